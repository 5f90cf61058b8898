"""Secure by default: QEMU confined without being asked, guest-driven host files capped,
host paths resolved without following planted symlinks (issue 11, points 1-3)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.bundle import DEFAULT_CAPS, make_bundle, read_spec, write_spec
from tests.framework.procs import qemu_pids, wait_until

pytestmark = pytest.mark.vm

#: What a "privileged" container gets: every capability, every device.
ALL_CAPS = [*DEFAULT_CAPS, "CAP_MKNOD", "CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]


class Box:
    """The CLI with a private root and, optionally, a configuration file."""

    def __init__(self, root: Path, tmp: Path, config: str = "") -> None:
        self.root, self.tmp = root, tmp
        self.config = tmp / "config.toml"
        self.config.write_text(config)
        self.ids: list[str] = []

    def __call__(self, *args: str | Path, timeout: float = 120) -> cli.Result:
        return cli.run("--config", self.config, "--root", self.root, *args, timeout=timeout)

    def run_detached(self, cid: str, bundle: Path) -> cli.Result:
        """``run -d`` with files for stdio: the container keeps them (pipes would not end)."""
        self.ids.append(cid)
        argv = cli.strongbox_argv("--config", self.config, "--root", self.root, "run", "-d",
                                  "--bundle", bundle, cid)
        return cli.run_to_files(argv, self.tmp / f"{cid}.out", self.tmp / f"{cid}.err")

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "--force", cid)


@pytest.fixture
def box(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[Box]:
    b = Box(no_leaks, tmp_path)
    yield b
    b.cleanup()


def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


# --- 3: confined by default ----------------------------------------------------------------

@pytest.mark.parametrize("jailer", ["default", "off"])
def test_qemu_runs_under_its_seccomp_filter(box: Box, tmp_path: Path, jailer: str) -> None:
    if jailer == "off":
        box.config.write_text("[hypervisor.qemu]\njailer = false\n")
    box.run_detached("sc", make_bundle(tmp_path / "b", ["sleep", "600"])).check()
    (qemu,) = qemu_pids(str(box.root))
    status = _status(qemu)
    assert status["Seccomp"].strip() == "2"  # SECCOMP_MODE_FILTER
    jailed = status["Uid"].split()[0] != "0"
    assert jailed == (jailer == "default"), status["Uid"]
    if jailed:  # the default is the jailer's chroot and namespaces, too
        assert Path(f"/proc/{qemu}/root").resolve() == box.root / "vms" / "sc" / "jail"
        assert status["NSpid"].split()[-1] == "1"


# --- 2: a flooding console is capped --------------------------------------------------------

def test_a_flooding_console_is_capped(box: Box, tmp_path: Path) -> None:
    box.config.write_text("[hypervisor.qemu]\nconsole_log_size = 64\n")  # KiB
    flood = ("mknod /dev/con c 229 0 && echo FLOOD-START > /dev/con && "
             "while true; do cat /bin/busybox > /dev/con; done")
    caps = {k: ALL_CAPS for k in ("bounding", "effective", "permitted")}
    bundle = make_bundle(tmp_path / "b", ["sh", "-c", flood], process__capabilities=caps,
                         process__noNewPrivileges=False,
                         linux__resources__devices=[{"allow": True, "access": "rwm"}])
    box.run_detached("flood", bundle).check()
    console = box.root / "vms" / "flood" / "console.log"
    started = time.monotonic()
    sizes = []
    while time.monotonic() - started < 8:
        sizes.append(console.stat().st_size)
        time.sleep(0.25)
    assert max(sizes) <= 64 * 1024
    data = console.read_bytes()
    match = re.search(rb"\[strongbox: (\d+) bytes of output dropped here", data)
    assert match, data[:300]
    assert int(match.group(1)) > 1 << 20  # the flood was real: megabytes went by
    assert b"FLOOD-START" in data[:16 * 1024]  # the head is kept
    # The guest is still answering (the flood only slowed its console).
    assert box("state", "flood").check().json()["status"] == "running"
    qemu_log = box.root / "vms" / "flood" / "qemu.log"
    assert qemu_log.stat().st_size <= 64 * 1024
    assert wait_until(lambda: bool(qemu_pids(str(box.root))), 1)


# --- 1: host paths are resolved safely -------------------------------------------------------

def _nothing_left(box: Box, cid: str) -> None:
    assert not (box.root / "containers" / cid).exists()
    vms = box.root / "vms"
    assert not (vms.exists() and list(vms.iterdir()))
    assert not qemu_pids(str(box.root))


@pytest.mark.parametrize("command", ["create", "run"])
@pytest.mark.parametrize("shape", ["link-to-root", "through-a-link"])
def test_a_symlinked_rootfs_is_refused_with_runcs_reason(box: Box, tmp_path: Path,
                                                         command: str, shape: str) -> None:
    bundle = make_bundle(tmp_path / "b", ["true"])
    if shape == "link-to-root":  # the reported escape: the guest got the host's / read-write
        (bundle / "escape").symlink_to("/")
        root = "escape"
    else:
        (bundle / "hop").symlink_to(bundle)
        root = "hop/rootfs"
    spec = read_spec(bundle)
    spec["root"]["path"] = root
    write_spec(bundle, spec)
    result = box(command, "--bundle", bundle, "sym")
    cli.assert_one_line_error(result, "root.path", "invalid rootfs: not an absolute path, "
                              "or a symlink")
    _nothing_left(box, "sym")
    if shutil.which("runc"):  # the same bundle, the same refusal
        runc = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "create", "--bundle",
                               str(bundle), "sym"], capture_output=True, text=True, timeout=30)
        assert runc.returncode != 0 and "invalid rootfs" in runc.stderr


def test_a_bind_source_through_procs_magic_links_is_refused(box: Box, tmp_path: Path) -> None:
    mounts = [*read_spec(make_bundle(tmp_path / "x"))["mounts"],
              {"destination": "/host", "type": "bind", "source": "/proc/self/root/etc",
               "options": ["rbind", "ro"]}]
    bundle = make_bundle(tmp_path / "b", ["true"], mounts=mounts)
    result = box("run", "--bundle", bundle, "magic")
    cli.assert_one_line_error(result, f"mounts[{len(mounts) - 1}].source", "magic links")
    _nothing_left(box, "magic")


def test_symlinks_that_runc_follows_still_work(box: Box, tmp_path: Path) -> None:
    """A symlinked bundle and bind source (the author's choice) work as in runc; a symlink
    inside the rootfs resolves inside the container, never on the host."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("through the link\n")
    (tmp_path / "data-link").symlink_to(data)
    mounts = [*read_spec(make_bundle(tmp_path / "x"))["mounts"],
              {"destination": "/data", "type": "bind", "source": str(tmp_path / "data-link"),
               "options": ["rbind", "ro"]}]
    script = "cat /data/file; cat /hostroot/etc/hostname; ls /hostroot/host-only || true"
    bundle = make_bundle(tmp_path / "b", ["sh", "-c", script], mounts=mounts)
    (bundle / "rootfs" / "hostroot").symlink_to("/")
    (bundle / "rootfs" / "data").mkdir()
    (tmp_path / "host-only").mkdir()
    (tmp_path / "bundle-link").symlink_to(bundle)
    result = box("run", "--bundle", tmp_path / "bundle-link", "links").check()
    assert result.stdout.splitlines()[:2] == ["through the link", "busybox"]
    box("delete", "links")


def test_a_pid_file_symlink_is_replaced_not_written_through(box: Box, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "pid").symlink_to(victim)
    box.ids.append("pidf")
    argv = cli.strongbox_argv("--config", box.config, "--root", box.root, "create", "--bundle",
                              make_bundle(tmp_path / "b", ["sleep", "60"]), "--pid-file",
                              tmp_path / "pid", "pidf")
    subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120, check=True)
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "pid").is_symlink()
    assert int((tmp_path / "pid").read_text()) > 0
