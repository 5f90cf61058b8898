"""The jailer, seen from the host: every confinement property read off /proc of a live QEMU.

A jailed VM is started with ``[hypervisor.qemu] jailer = true`` and, while a
container runs in it, its QEMU process is inspected the way an auditor
would: root directory, credentials, capabilities, seccomp, namespaces,
cgroup and limits, open descriptors, environment. Then what a jail must not
change (containers that write, ``guest boot``, a pod's second container),
what it must forbid (opening a host file from QMP), and that nothing is left
behind, even when strongbox is killed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.config import Config, NetworkConfig, parse_config
from strongbox.hypervisor.jailer.cgroups import PARENT, detect
from strongbox.hypervisor.jailer.identity import uid_for
from strongbox.hypervisor.qemu.accel import choose
from strongbox.hypervisor.qemu.qmp import QMPCommandError
from strongbox.hypervisor.qemu.vmm import QemuVMM
from strongbox.oci.spec import load_bundle
from strongbox.runtime.paths import DEFAULT_STATE_DIR
from strongbox.sandbox.plan import ContainerRequest
from strongbox.sandbox.rundir import RunDir
from strongbox.sandbox.sandbox import Sandbox
from strongbox.sandbox.vm import GuestVM
from tests.framework import cli
from tests.framework.bundle import make_bundle, read_spec, write_spec
from tests.framework.procs import qemu_pids, wait_until

pytestmark = pytest.mark.vm

JAILED = {"hypervisor": {"qemu": {"jailer": True}}}
UNJAILED = {"hypervisor": {"qemu": {"jailer": False}}}
#: CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID.
ALLOWED_CAPS = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 4)
DEFAULT_UID_BASE = 100000
#: guest RAM of `strongbox run` without a memory limit, plus the default overhead.
MEMORY_LIMIT = (256 + 384) * 1024 * 1024
PIDS_MAX = 128


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "jailed.toml"
    path.write_text("[hypervisor.qemu]\njailer = true\n")
    return path


@pytest.fixture
def env(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[Path]:
    """The test's root; afterwards no jail cgroup and no jail mount may remain."""
    yield no_leaks
    for base in detect().roots():
        parent = base / PARENT
        leftovers = [p.name for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
        mine = [name for name in leftovers if name.startswith(("boot-", "template-"))
                or (name.startswith("jail-") and name.endswith(f"-{os.getpid()}"))]
        assert not mine, f"cgroups left behind under {parent}: {mine}"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(no_leaks) not in mounts, "a jail mount leaked into the host's namespace"


def _bundle(tmp: Path, name: str, args: list[str], **changes: Any) -> Path:
    changes.setdefault("root__readonly", False)
    return make_bundle(tmp / name, args, **changes)


def _with_bind(bundle: Path, source: Path, destination: str) -> Path:
    spec = read_spec(bundle)
    spec["mounts"].append({"destination": destination, "type": "bind", "source": str(source),
                           "options": ["rbind", "rw"]})
    write_spec(bundle, spec)
    return bundle


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def _ppid(pid: int) -> int:
    return int(_status(pid)["PPid"])


def _fds(pid: int) -> dict[int, str]:
    fds = {}
    for entry in os.listdir(f"/proc/{pid}/fd"):
        try:
            fds[int(entry)] = os.readlink(f"/proc/{pid}/fd/{entry}")
        except FileNotFoundError:
            pass
    return fds


def _cgroup_dirs(name: str) -> list[Path]:
    return [base / PARENT / name for base in detect().roots()]


class Running:
    """`strongbox run` of a container that says "ready" and waits for stdin to close."""

    def __init__(self, root: Path, config: Path, bundle: Path, cid: str) -> None:
        argv = cli.strongbox_argv("--root", root, "--config", config, "run", "--bundle", bundle,
                                  cid)
        self.cid = cid
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == b"ready\n", self.proc.stderr.read() if self.proc.stderr else line
        pids = qemu_pids(str(root))
        assert len(pids) == 1, pids
        self.qemu = pids[0]

    def finish(self) -> tuple[int, bytes]:
        out, _ = self.proc.communicate(b"", timeout=60)
        return self.proc.returncode, out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


READY_THEN_WAIT = ["sh", "-c", "echo ready; read line; echo done"]


# --- what /proc says about a jailed QEMU ---------------------------------------------------

def test_jailed_qemu_from_proc(env: Path, tmp_path: Path, config_file: Path) -> None:
    cid = f"jail-proc-{os.getpid()}"
    run = Running(env, config_file, _bundle(tmp_path, "b", READY_THEN_WAIT), cid)
    try:
        qemu, run_dir = run.qemu, env / "vms" / cid
        jail = run_dir / "jail"
        status = _status(qemu)

        # chroot
        assert os.readlink(f"/proc/{qemu}/root") == str(jail)
        # its own unprivileged uid and gid, no supplementary group (TCG: no /dev/kvm)
        uid = uid_for(cid, DEFAULT_UID_BASE)
        assert uid >= DEFAULT_UID_BASE
        assert status["Uid"].split() == [str(uid)] * 4
        assert status["Gid"].split() == [str(uid)] * 4
        if choose("auto").name == "tcg":
            assert status["Groups"] == ""
        # only the four capabilities 9p passthrough needs, and nothing to regain
        for field in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
            assert int(status[field], 16) == ALLOWED_CAPS, (field, status[field])
        assert status["NoNewPrivs"] == "1"
        # QEMU's seccomp filter is on
        assert status["Seccomp"] == "2"
        # PID 1 of its own pid namespace
        assert status["NSpid"].split() == [str(qemu), "1"]
        # new pid, ipc, uts and mount namespaces, and (the spec names no path) a network
        # namespace of the sandbox's own, which the monitor shares
        for ns in ("pid", "ipc", "uts", "mnt", "net"):
            assert os.readlink(f"/proc/{qemu}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
        assert os.readlink(f"/proc/{qemu}/ns/net") == os.readlink(f"/proc/{run.proc.pid}/ns/net")

        # in strongbox/<id> of the memory and pids hierarchies, with the limits
        hierarchies = detect()
        membership = Path(f"/proc/{qemu}/cgroup").read_text().splitlines()
        wanted = f"/{PARENT}/{cid}"
        if hierarchies.version == 2:
            assert f"0::{wanted}" in membership
            memory_file = hierarchies.memory / PARENT / cid / "memory.max"
        else:
            for controller in ("memory", "pids"):
                assert any(re.fullmatch(rf"\d+:([\w,]*,)?{controller}(,[\w,]*)?:{wanted}", line)
                           for line in membership), (controller, membership)
            memory_file = hierarchies.memory / PARENT / cid / "memory.limit_in_bytes"
        assert "-m\x00256M\x00" in Path(f"/proc/{qemu}/cmdline").read_text()
        assert int(memory_file.read_text()) == MEMORY_LIMIT
        assert int((hierarchies.pids / PARENT / cid / "pids.max").read_text()) == PIDS_MAX

        # descriptors: stdio, its three channels, what it opened in the jail; nothing else
        fds = _fds(qemu)
        assert fds[0] == "/dev/null"
        # stdout and stderr: the pipe to the recorder that caps qemu.log (no host file)
        assert fds[1] == fds[2] and fds[1].startswith("pipe:")
        sockets = [t for t in fds.values() if t.startswith("socket:")]
        assert len(sockets) == 3, fds  # QMP, the agent channel, the console
        # its NICs' taps, made outside the jail and handed over: QEMU needs neither
        # /dev/net/tun in its root nor CAP_NET_ADMIN (checked above) nor netlink
        taps = [fd for fd, t in fds.items() if t == "/dev/net/tun"]
        assert len(taps) == NetworkConfig().nic_slots, fds
        assert not (jail / "dev" / "net").exists()
        for fd, target in fds.items():
            if fd <= 2 or fd in taps or target.startswith(("socket:", "anon_inode:")):
                continue
            assert target.startswith(str(jail) + "/"), (fd, target)
        assert not [t for fd, t in fds.items() if (fd > 2 and t.startswith("pipe:"))
                    or "owner.lock" in t], fds
        # a clean environment
        assert Path(f"/proc/{qemu}/environ").read_bytes() == b""

        # the waiter above it holds nothing but stdio and its liveness pipe
        waiter = _ppid(qemu)
        waiter_fds = _fds(waiter)
        assert sorted(waiter_fds)[:3] == [0, 1, 2]
        extra = [t for fd, t in waiter_fds.items() if fd > 2]
        assert len(extra) == 1 and extra[0].startswith("pipe:"), waiter_fds
        assert _status(waiter)["NSpid"].split() == [str(waiter)]  # in the host's pid namespace

        # the jail's mounts exist only in QEMU's namespace
        assert str(jail) not in Path("/proc/self/mountinfo").read_text()
        code, out = run.finish()
    finally:
        run.kill()
    assert code == 0 and out == b"done\n"  # "ready" was read above
    assert not any(p.exists() for p in _cgroup_dirs(cid))


def _mountinfo_flags(text: str, mount_point: str) -> set[str]:
    for line in text.splitlines():
        fields = line.split()
        if fields[4] == mount_point:
            return set(fields[5].split(","))
    raise AssertionError(f"{mount_point} is not a mount point")


def test_jail_holds_only_what_qemu_needs(env: Path, tmp_path: Path,
                                        config_file: Path) -> None:
    cid = f"jail-mounts-{os.getpid()}"
    rw = tmp_path / "rw"
    rw.mkdir()
    bundle = _with_bind(_bundle(tmp_path, "b", READY_THEN_WAIT), rw, "/rw")
    run = Running(env, config_file, bundle, cid)
    try:
        run_dir = env / "vms" / cid
        export = run_dir / "shared"
        # QEMU's mountinfo shows its mounts relative to its root: the jail.
        info = Path(f"/proc/{run.qemu}/mountinfo").read_text()
        points = [line.split()[4] for line in info.splitlines()]
        wanted = {"/", "/proc", "/dev/null", "/dev/urandom", "/usr/share/qemu",
                  "/usr/lib/x86_64-linux-gnu", str(export),
                  f"{export}/{cid}/rootfs", f"{export}/{cid}/mounts/7/rw"}
        assert wanted <= set(points), points
        others = set(points) - wanted
        assert {Path(p).name for p in others} == {"qemu-system-x86_64", "vmlinux",
                                                   "initrd.cpio"}, others
        assert {"ro", "nosuid", "nodev", "noexec"} <= _mountinfo_flags(info, "/")
        assert {"ro", "nosuid", "nodev"} <= _mountinfo_flags(info, "/usr/share/qemu")
        assert {"rw", "nosuid", "nodev", "noexec"} <= _mountinfo_flags(info, str(export))
        # below the export too: no device node of a container image opens
        for share in (f"{export}/{cid}/rootfs", f"{export}/{cid}/mounts/7/rw"):
            assert {"rw", "nosuid", "nodev"} <= _mountinfo_flags(info, share)
        assert {"ro", "nosuid"} <= _mountinfo_flags(info, "/dev/urandom")
        assert "nodev" not in _mountinfo_flags(info, "/dev/urandom")
        assert "subset=pid" in next(ln for ln in info.splitlines() if ln.split()[4] == "/proc")
        run.finish()
    finally:
        run.kill()


# --- what a jail must not change -----------------------------------------------------------

WRITER = ("echo persisted > /written; echo out > /rw/result; mkdir /d; chmod 2755 /d; "
          "chown 1000:1000 /written; su user -s /bin/sh -c 'echo mine > /home/user/f'; "
          "stat -c '%A %u %g %s %n' /written /home/user/f /rw/result /d")


@pytest.mark.parametrize("jailed", [False, True], ids=["plain", "jailed"])
def test_run_writes_rootfs_and_bind_mount(env: Path, tmp_path: Path, config_file: Path,
                                          jailed: bool) -> None:
    rw = tmp_path / "rw"
    rw.mkdir()
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SETUID",
            "CAP_SETGID"]
    bundle = _with_bind(_bundle(tmp_path, "b", ["sh", "-c", WRITER], process__capabilities={
        k: caps for k in ("bounding", "effective", "permitted")}), rw, "/rw")
    home = bundle / "rootfs" / "home" / "user"
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, 1000, 1000)
    config = ("--config", str(config_file)) if jailed else ()
    result = cli.run("--root", env, *config, "run", "--bundle", bundle,
                     f"jail-writer-{os.getpid()}").check()
    assert result.stdout.splitlines() == [
        "-rw-r--r-- 1000 1000 10 /written",
        "-rw-r--r-- 1000 1000 5 /home/user/f",
        "-rw-r--r-- 0 0 4 /rw/result",
        "drwxr-sr-x 0 0 4096 /d",
    ], result.stdout
    written = bundle / "rootfs" / "written"
    assert written.read_text() == "persisted\n"
    assert (written.stat().st_uid, written.stat().st_gid) == (1000, 1000)
    assert (rw / "result").read_text() == "out\n"
    assert (bundle / "rootfs" / "d").stat().st_mode & 0o7777 == 0o2755


def test_guest_boot_jailed(env: Path, config_file: Path) -> None:
    report = cli.run("--root", env, "--config", config_file, "guest", "boot",
                     "--json").check().json()
    assert report["qemu_exit_status"] == 0
    assert not any(p.exists() for p in _cgroup_dirs(report["name"]))


def test_second_container_of_a_jailed_pod(env: Path, tmp_path: Path) -> None:
    """Mounts added to a running VM's export (vmmounts) reach into the jail."""
    first = _bundle(tmp_path, "first", ["sleep", "1000"])
    second = _bundle(tmp_path, "second", ["sh", "-c", "echo from-second > /made-here"])

    async def pod() -> int:
        sandbox = Sandbox(parse_config(JAILED), sandbox_id=f"jail-pod-{os.getpid()}",
                          root=env, state_dir=DEFAULT_STATE_DIR)
        try:
            spec, rootfs = load_bundle(str(first))
            await sandbox.launch(ContainerRequest(id="one", spec=spec, rootfs=rootfs,
                                                  stdin=False))
            await sandbox.start_container("one")
            spec2, rootfs2 = load_bundle(str(second))
            await sandbox.add_container(ContainerRequest(id="two", spec=spec2, rootfs=rootfs2,
                                                         stdin=False))
            await sandbox.start_container("two")
            status = await sandbox.wait_process("two")
            await sandbox.remove_container("two")
            assert not (sandbox.export / "two").exists()
            return status.code
        finally:
            try:
                await sandbox.stop()
            finally:
                await sandbox.destroy()

    assert asyncio.run(asyncio.wait_for(pod(), 120)) == 0
    assert (second / "rootfs" / "made-here").read_text() == "from-second\n"
    assert not any(p.exists() for p in _cgroup_dirs(f"jail-pod-{os.getpid()}"))


def test_jailed_clone_of_a_jailed_template(env: Path, tmp_path: Path) -> None:
    """VM templates: the memory file and the state descriptor reach a jailed QEMU."""
    template = Path(f"/dev/shm/sbx-jail-{os.getpid()}/template")
    config = tmp_path / "factory.toml"
    config.write_text(f'[hypervisor.qemu]\njailer = true\n[factory]\nenable_template = true\n'
                      f'template_path = "{template}"\n')
    try:
        cli.run("--root", env, "--config", config, "factory", "init").check()
        cid = f"jail-clone-{os.getpid()}"
        bundle = _bundle(tmp_path, "b", ["sh", "-c", "echo cloned > /written; echo ready; "
                                                     "read line; echo done"])
        run = Running(env, config, bundle, cid)
        try:
            argv = Path(f"/proc/{run.qemu}/cmdline").read_bytes().split(b"\0")
            assert b"-incoming" in argv
            assert f"mem-path={template}/memory".encode() in b" ".join(argv)
            assert os.readlink(f"/proc/{run.qemu}/root") == str(env / "vms" / cid / "jail")
            assert _status(run.qemu)["Seccomp"] == "2"
            code, out = run.finish()
        finally:
            run.kill()
        assert (code, out) == (0, b"done\n")
        assert (bundle / "rootfs" / "written").read_text() == "cloned\n"
    finally:
        shutil.rmtree(template.parent, ignore_errors=True)


# --- what a jail must forbid ---------------------------------------------------------------

async def _chardev_to(config: Config, root: Path, name: str, path: Path) -> Any:
    """Boot a VM and ask its QEMU, over QMP, to open ``path`` for writing."""
    vmm = QemuVMM(config.hypervisor.qemu, DEFAULT_STATE_DIR)
    run_dir = RunDir.create(root, name)
    qemu = vmm.new_vm(vmm.vm_spec(name=name, run_dir=run_dir.path, memory_mib=256, vcpus=1))
    vm = GuestVM(qemu, request_timeout=60)
    try:
        await vm.boot(60)
        return await qemu.monitor.execute("chardev-add", {
            "id": "probe", "backend": {"type": "file", "data": {"out": str(path)}}})
    finally:
        await vm.destroy()
        run_dir.remove()


@pytest.mark.parametrize("jailed", [False, True], ids=["plain", "jailed"])
def test_qmp_cannot_open_a_host_file_outside_the_jail(env: Path, tmp_path: Path,
                                                      jailed: bool) -> None:
    target = tmp_path / "outside"
    target.write_text("host file\n")
    config = parse_config(JAILED if jailed else UNJAILED)
    name = f"jail-qmp-{os.getpid()}"
    if not jailed:
        asyncio.run(_chardev_to(config, env, name, target))
        assert target.read_text() == ""  # QEMU opened it (and truncated it)
        return
    with pytest.raises(QMPCommandError) as info:
        asyncio.run(_chardev_to(config, env, name, target))
    assert str(target) in str(info.value)
    assert "No such file or directory" in str(info.value)
    assert target.read_text() == "host file\n"


# --- nothing left behind -------------------------------------------------------------------

def test_sigkill_of_strongbox_kills_jailed_qemu(env: Path, tmp_path: Path,
                                                config_file: Path) -> None:
    cid = f"jail-kill-{os.getpid()}"
    run = Running(env, config_file, _bundle(tmp_path, "b", READY_THEN_WAIT), cid)
    try:
        waiter = _ppid(run.qemu)
        owner = _ppid(waiter)
        assert owner == run.proc.pid
        os.kill(owner, signal.SIGKILL)
        run.proc.wait()
        assert wait_until(lambda: not qemu_pids(str(env)), timeout=5), "QEMU outlived strongbox"
        assert wait_until(lambda: not Path(f"/proc/{waiter}").exists() or
                          ") Z " in Path(f"/proc/{waiter}/stat").read_text(), timeout=5)
    finally:
        run.kill()
    # The killed owner left its run directory (and cgroup); the next command collects both.
    assert (env / "vms" / cid).is_dir()
    cli.run("--root", env, "--config", config_file, "guest", "boot", "--json").check()
    assert not (env / "vms" / cid).exists()
    assert not any(p.exists() for p in _cgroup_dirs(cid))
