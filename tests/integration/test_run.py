"""`strongbox run`: an OCI bundle runs in a microVM and behaves as it would under runc."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.containers import Bundles, tree_digest

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("factory_mode")]

TMPFS_TMP = {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", "size=80m"]}


@pytest.fixture
def bundles(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[Bundles]:
    yield Bundles(tmp_path, no_leaks)


def _with_mounts(bundles: Bundles, bundle: Path, *extra: dict[str, object]) -> Path:
    from tests.framework.bundle import read_spec

    spec = read_spec(bundle)
    return bundles.edit(bundle, mounts=spec["mounts"] + list(extra))


# --- exit status and stdio ---------------------------------------------------------------

@pytest.mark.pool
@pytest.mark.q35
def test_echo(bundles: Bundles) -> None:
    result = bundles.run(bundles.make(["echo", "hello from the microVM"]))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from the microVM\n"


@pytest.mark.pool
@pytest.mark.q35
def test_the_machine_is_the_configured_one(bundles: Bundles, factory_mode: str) -> None:
    """q35 puts the guest's devices on PCI (virtio-pci, the root ports); microvm has no PCI."""
    result = bundles.run(bundles.make(["sh", "-c", "ls /sys/bus/pci/devices 2>/dev/null | wc -l;"
                                       " cat /sys/bus/pci/devices/*/vendor 2>/dev/null; true"]))
    assert result.returncode == 0, result.stderr
    count, *vendors = result.stdout.split()
    if factory_mode.startswith("q35"):
        assert "0x1af4" in vendors, result.stdout  # virtio's vendor id: devices on PCI
    else:
        assert count == "0", result.stdout


def test_a_process_that_exits_before_its_start_is_answered(bundles: Bundles) -> None:
    """Under load a `true` can run and exit, and its wait be answered, before the start
    request's own answer arrives: the start still succeeded (it stays stopped, exit 0)."""
    from concurrent.futures import ThreadPoolExecutor

    bundle = bundles.make(["true"])
    with ThreadPoolExecutor(max_workers=8) as workers:
        results = list(workers.map(lambda i: bundles.run(bundle, container_id=f"fast{i}"),
                                   range(8)))
    assert [r.returncode for r in results] == [0] * 8, [r.stderr for r in results]


@pytest.mark.parametrize("code", [0, 1, 42])
def test_exit_codes(bundles: Bundles, code: int) -> None:
    assert bundles.run(bundles.make(["sh", "-c", f"exit {code}"])).returncode == code


def test_death_by_signal_is_128_plus_n(bundles: Bundles) -> None:
    # Without a pid namespace the process is not an init, so a signal kills it.
    bundle = bundles.make(["sh", "-c", "kill -TERM $$; sleep 5"],
                          linux__namespaces=[{"type": "mount"}, {"type": "ipc"},
                                             {"type": "uts"}])
    assert bundles.run(bundle).returncode == 128 + signal.SIGTERM


def test_sigterm_to_run_reaches_the_process(bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", 'trap "echo got-term; exit 7" TERM; echo ready; '
                                       "while true; do sleep 0.1; done"])
    argv = cli.strongbox_argv("--root", bundles.root, "run", "--bundle", bundle, "sigterm")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert out == b"got-term\n", err
    assert proc.returncode == 7


def test_fifty_mib_through_stdout(bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "head -c 52428800 /dev/urandom > /tmp/blob && "
                                       "sha256sum /tmp/blob >&2 && cat /tmp/blob"])
    _with_mounts(bundles, bundle, TMPFS_TMP)
    result = bundles.run_bytes(bundle, timeout=600)
    assert result.returncode == 0, result.stderr[-500:]
    assert len(result.stdout) == 52428800
    expected = next(ln.split()[0] for ln in result.stderr.decode().splitlines()
                    if ln.endswith("/tmp/blob"))
    assert hashlib.sha256(result.stdout).hexdigest() == expected


@pytest.mark.pool
@pytest.mark.q35
def test_stdin_round_trips_through_cat(bundles: Bundles) -> None:
    data = os.urandom(3 * 1024 * 1024) + bytes(range(256))
    result = bundles.run_bytes(bundles.make(["cat"]), input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


def test_stdin_eof_is_delivered(bundles: Bundles) -> None:
    result = bundles.run(bundles.make(["sh", "-c", "wc -l; echo after-eof"]), input=b"a\nb\n")
    assert result.stdout.split() == ["2", "after-eof"]


@pytest.mark.pool
@pytest.mark.q35
def test_stderr_kept_separate(bundles: Bundles) -> None:
    result = bundles.run(bundles.make(["sh", "-c", "echo to-out; echo to-err >&2"]))
    assert result.stdout == "to-out\n"
    assert "to-err" in result.stderr and "to-out" not in result.stderr


def test_small_writes_to_both_outputs_arrive_whole_and_in_order(bundles: Bundles) -> None:
    # Thousands of short numbered lines, alternating between stdout and stderr: the
    # agent gathers small writes into big frames, and neither stream may lose,
    # repeat or reorder a line, up to the last one written just before the exit.
    script = ("i=0; while [ $i -lt 4000 ]; do echo out-$i; echo err-$i >&2; "
              "i=$((i+1)); done; printf last-out; printf last-err >&2")
    result = bundles.run_bytes(bundles.make(["sh", "-c", script]), timeout=600)
    assert result.returncode == 0, result.stderr[-500:]
    numbers = range(4000)
    assert result.stdout == "".join(f"out-{i}\n" for i in numbers).encode() + b"last-out"
    assert result.stderr.endswith(
        "".join(f"err-{i}\n" for i in numbers).encode() + b"last-err")


def test_large_stdin_arrives_intact_before_its_eof(bundles: Bundles) -> None:
    # 24 MiB in: far more than any window, frame or pipe holds, so flow control,
    # the agent's batched port reads and its stdin writes all take part; the digest
    # is printed only after cat saw the end of its input.
    data = os.urandom(24 * 1024 * 1024)
    result = bundles.run_bytes(bundles.make(["sh", "-c", "sha256sum; echo after-eof"]),
                               input=data, timeout=600)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.split() == [hashlib.sha256(data).hexdigest().encode(), b"-",
                                     b"after-eof"]


def test_missing_executable(bundles: Bundles) -> None:
    result = bundles.run(bundles.make(["no-such-binary"]))
    assert result.returncode == 127
    cli.assert_one_line_error(result, "no-such-binary")


# --- the process as the spec describes it -------------------------------------------------

def test_env_cwd_user_groups(bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "echo $GREETING; pwd; id"],
                          process__env=["PATH=/bin", "GREETING=hello there"],
                          process__cwd="/home/user",
                          process__user={"uid": 1000, "gid": 1000, "additionalGids": [5, 100]})
    lines = bundles.run(bundle).check().stdout.splitlines()
    assert lines[0] == "hello there"
    assert lines[1] == "/home/user"
    assert "uid=1000(user)" in lines[2] and "gid=1000(user)" in lines[2]
    assert "5(tty)" in lines[2] and "100(users)" in lines[2]


@pytest.mark.pool
@pytest.mark.q35
def test_hostname(bundles: Bundles) -> None:
    bundle = bundles.make(["hostname"], hostname="boxy")
    assert bundles.run(bundle).check().stdout == "boxy\n"


@pytest.mark.pool
@pytest.mark.q35
@pytest.mark.parametrize("network", ["new", "none"])
def test_loopback_is_up(bundles: Bundles, network: str) -> None:
    """A new network namespace (runc's default spec) and none at all (``--network host``:
    the VM's own namespace, as a VM cannot share the host's stack) both have lo up."""
    kinds = ("pid", "ipc", "uts", "mount") + (("network",) if network == "new" else ())
    script = ("cat /sys/class/net/lo/flags; (nc -l -p 7777 > /tmp/got &); sleep 0.5; "
              "echo over-localhost | nc -w 2 127.0.0.1 7777; sleep 0.3; cat /tmp/got")
    bundle = bundles.make(["sh", "-c", script], root__readonly=False,
                          linux__namespaces=[{"type": t} for t in kinds])
    assert bundles.run(bundle).check().stdout.split() == ["0x9", "over-localhost"]


def test_pid_one(bundles: Bundles) -> None:
    out = bundles.run(bundles.make(["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"])).check()
    pid, count = out.stdout.split()
    assert pid == "1"
    assert int(count) <= 3  # sh, ls, grep: nothing of the guest or the host


def test_readonly_device_paths_behave_as_with_runc(bundles: Bundles, tmp_path: Path) -> None:
    """A readonlyPaths entry naming a device node stays usable (read-only is the mount's,
    not the device's), and its mount flags are runc's: ro plus what it had."""
    from tests.framework.bundle import DEFAULT_SPEC

    script = ("echo hi > /dev/null && echo wrote; head -c 3 /dev/zero | od -An -tx1; "
              "grep -E ' /dev/(null|zero) ' /proc/self/mountinfo | cut -d' ' -f5,6")
    bundle = bundles.make(["sh", "-c", script], linux__readonlyPaths=[
        *DEFAULT_SPEC["linux"]["readonlyPaths"], "/dev/null", "/dev/zero"])
    ours = bundles.run(bundle).check().stdout.split("\n")
    assert ours[:2] == ["wrote", " 00 00 00"]
    runc = shutil.which("runc")
    if runc is not None:
        theirs = subprocess.run([runc, "--root", str(tmp_path / "runc"), "run", "--bundle",
                                 str(bundle), f"ro-{os.getpid()}"], capture_output=True,
                                text=True, timeout=60)
        assert theirs.returncode == 0, theirs.stderr
        assert ours == theirs.stdout.split("\n")


def test_readonly_root_refuses_writes(bundles: Bundles) -> None:
    bundle = bundles.make(["touch", "/written"], root__readonly=True)
    result = bundles.run(bundle)
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    assert not (bundle / "rootfs" / "written").exists()


def test_writes_reach_the_host_rootfs_by_default(bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "echo persisted > /written"])
    bundles.run(bundle).check()
    assert (bundle / "rootfs" / "written").read_text() == "persisted\n"


@pytest.mark.pool
@pytest.mark.q35
def test_bind_mounts_rw_and_ro(bundles: Bundles, tmp_path: Path) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "given").write_text("from host\n")
    bundle = bundles.make(["sh", "-c", "cat /ro/given; echo out > /rw/result; "
                                       "touch /ro/denied || echo ro-refused"])
    _with_mounts(bundles, bundle,
                 {"destination": "/rw", "type": "bind", "source": str(rw),
                  "options": ["rbind", "rw"]},
                 {"destination": "/ro", "type": "bind", "source": str(ro),
                  "options": ["rbind", "ro"]})
    result = bundles.run(bundle).check()
    assert result.stdout.splitlines() == ["from host", "ro-refused"]
    assert (rw / "result").read_text() == "out\n"
    assert not (ro / "denied").exists()


@pytest.mark.pool
@pytest.mark.q35
def test_overlay_leaves_host_rootfs_untouched(bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "echo new > /newfile; echo x >> /etc/passwd; "
                                       "rm /bin/ls; mkdir /newdir; cat /newfile"])
    before = tree_digest(bundle / "rootfs")
    result = bundles.run(bundle, "--overlay").check()
    assert result.stdout == "new\n"
    assert tree_digest(bundle / "rootfs") == before


# --- limits inside the guest ---------------------------------------------------------------

def test_memory_limit_oom_kills(bundles: Bundles) -> None:
    bundle = bundles.make(["dd", "if=/dev/zero", "of=/dev/null", "bs=96M", "count=1"],
                          linux__resources={"memory": {"limit": 32 * 1024 * 1024}})
    result = bundles.run(bundle)
    assert result.returncode == 128 + signal.SIGKILL, result.stderr


def test_fork_bomb_stops_at_pids_max(bundles: Bundles) -> None:
    # After the bomb starts only shell builtins run: the shell must not need to fork. The
    # bomb starts in a background subshell, the main shell's only fork: started directly,
    # the shell forked both halves of `b|b&` itself, and when the first half's bomb had
    # filled the limit before the second fork, the shell died of "can't fork" (1 in 6).
    script = ("b(){ b|b& }; (b)& i=0; while [ $i -lt 20000 ]; do "
              "read ev < /sys/fs/cgroup/pids.events; [ \"$ev\" != 'max 0' ] && break; "
              "i=$((i+1)); done; read max < /sys/fs/cgroup/pids.max; echo limit=$max; "
              "echo $ev; echo survived")
    bundle = bundles.make(
        ["sh", "-c", script], linux__resources={"pids": {"limit": 24}},
        linux__namespaces=[{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")],
    )
    result = bundles.run(bundle, timeout=300)
    lines = result.stdout.splitlines()
    assert "limit=24" in lines, result.stdout + result.stderr[-300:]
    assert "survived" in lines
    events = next(ln for ln in lines if ln.startswith("max "))
    assert int(events.split()[1]) > 0  # forks were refused at the limit
    assert "can't fork" in result.stderr


def test_vm_sized_from_the_spec(bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "grep MemTotal /proc/meminfo; grep -c ^processor "
                                       "/proc/cpuinfo"],
                          linux__resources={"memory": {"limit": 512 * 1024 * 1024},
                                            "cpu": {"quota": 200000, "period": 100000}})
    lines = bundles.run(bundle).check().stdout.splitlines()
    mem_kib = int(lines[0].split()[1])
    assert 512 * 1024 < mem_kib <= (512 + 64) * 1024  # the limit plus the guest's margin
    assert lines[1] == "2"


# --- privileges -----------------------------------------------------------------------------

def test_seccomp_denies_mkdir(bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "mkdir /tmp/x; echo status=$?"],
                          linux__seccomp={
                              "defaultAction": "SCMP_ACT_ALLOW",
                              "architectures": ["SCMP_ARCH_X86_64"],
                              "syscalls": [{"names": ["mkdir", "mkdirat"],
                                            "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})
    result = bundles.run(bundle)
    assert "Operation not permitted" in result.stderr
    assert "status=1" in result.stdout


def test_chown_needs_cap_chown(bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "touch /tmp/f && chown 1000 /tmp/f; echo status=$?"])
    result = bundles.run(bundle)
    assert "Operation not permitted" in result.stderr
    assert "status=1" in result.stdout


def test_no_new_privileges_visible(bundles: Bundles) -> None:
    out = bundles.run(bundles.make(["grep", "NoNewPrivs", "/proc/self/status"])).check()
    assert out.stdout.split() == ["NoNewPrivs:", "1"]


# --- nothing of the host is visible --------------------------------------------------------

def test_cannot_see_host(bundles: Bundles, tmp_path: Path) -> None:
    marker = tmp_path / "host-only-marker"
    marker.write_text("secret")
    script = (f"ls {marker} 2>&1; cat /proc/net/dev | tail -n +3 | cut -d: -f1; "
              "ls /dev/kvm 2>&1; ls /sys/class/misc 2>&1; cat /proc/1/cmdline; echo; "
              "ps -o pid,comm")
    result = bundles.run(bundles.make(["sh", "-c", script])).check()
    out = result.stdout
    assert "No such file or directory" in out.splitlines()[0]  # the host's tmp dir
    interfaces = [ln.strip() for ln in out.splitlines()[1:] if ln.strip() and " " not in
                  ln.strip() and ":" not in ln]
    assert "lo" in out and "eth0" not in out
    assert "/dev/kvm: No such file or directory" in out
    assert str(os.getpid()) not in out.split("PID")[-1]
    assert interfaces  # at least loopback was listed


# --- terminal ------------------------------------------------------------------------------

def test_terminal_session(bundles: Bundles) -> None:
    pexpect = pytest.importorskip("pexpect")
    bundle = bundles.make(["sh"], process__terminal=True,
                          process__env=["PATH=/bin", "PS1=box# ", "TERM=xterm"])
    argv = cli.strongbox_argv("--root", bundles.root, "run", "--bundle", bundle, "tty1")
    child = pexpect.spawn(argv[0], argv[1:], timeout=120, dimensions=(24, 80))
    try:
        child.expect("box# ")
        child.sendline("echo $((6*7))")
        child.expect("42")
        child.expect("box# ")
        child.sendline("tty")
        child.expect("/dev/")
        child.expect("box# ")
        child.setwinsize(40, 100)
        time.sleep(0.5)  # SIGWINCH -> resize_pty travels to the guest
        child.sendline("stty size")
        child.expect("40 100")
        child.expect("box# ")
        child.sendline("exit 3")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 3


# --- teardown and errors -----------------------------------------------------------------

def test_sigkill_of_run_leaves_nothing(root: Path, tmp_path: Path,
                                       guest_assets: dict[str, Path]) -> None:
    from tests.framework.procs import qemu_pids, wait_until

    bundles = Bundles(tmp_path, root)
    bundle = bundles.make(["sh", "-c", "echo ready; sleep 600"])
    argv = cli.strongbox_argv("--root", root, "run", "--bundle", bundle, "killed")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.kill()
    proc.wait()
    assert wait_until(lambda: not qemu_pids(str(root)), timeout=5), "QEMU outlived run"
    # No mount of the sandbox was ever made in our namespace.
    assert str(root) not in Path("/proc/self/mountinfo").read_text()
    # As with runc, the record stays until `delete`, which removes everything left.
    state = cli.run("--root", root, "state", "killed").check().json()
    assert state["status"] == "stopped"
    cli.run("--root", root, "delete", "killed").check()
    assert not list((root / "vms").iterdir())
    bundles.run(bundles.make(["true"]), container_id="killed").check()


def test_interrupt_is_forwarded_then_everything_is_removed(bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", 'trap "exit 130" INT; echo ready; '
                                       "while true; do sleep 0.1; done"])
    argv = cli.strongbox_argv("--root", bundles.root, "run", "--bundle", bundle, "intr")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130


def test_bad_config_names_the_json_path(bundles: Bundles) -> None:
    bundle = bundles.make(["true"], process__cwd="relative/dir")
    result = bundles.run(bundle)
    cli.assert_one_line_error(result, "process.cwd")
    bundle = bundles.make(["true"], linux__namespaces=[{"type": "netwrk"}])
    cli.assert_one_line_error(bundles.run(bundle), "linux.namespaces[0].type", "netwrk")


def test_missing_bundle_and_bad_id(bundles: Bundles, tmp_path: Path) -> None:
    result = cli.run("--root", bundles.root, "run", "--bundle", tmp_path / "absent", "x1")
    cli.assert_one_line_error(result, str(tmp_path / "absent"))
    bundle = bundles.make(["true"])
    cli.assert_one_line_error(bundles.run(bundle, container_id="bad/id"), "container id")


def test_create_time_failure_is_one_line(bundles: Bundles) -> None:
    bundle = bundles.make(["true"])
    _with_mounts(bundles, bundle, {"destination": "/x", "type": "nosuchfs", "source": "none"})
    result = bundles.run(bundle)
    cli.assert_one_line_error(result, "/x")


def test_same_id_twice_is_refused(bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "echo ready; sleep 600"])
    argv = cli.strongbox_argv("--root", bundles.root, "run", "--bundle", bundle, "twice")
    first = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    try:
        assert first.stdout is not None
        assert first.stdout.readline() == b"ready\n"
        second = bundles.run(bundles.make(["true"]), container_id="twice")
        cli.assert_one_line_error(second, "twice", "already exists")
    finally:
        first.kill()
        first.wait()
    cli.run("--root", bundles.root, "delete", "--force", "twice").check()



# --- mountinfo as runc shows it ----------------------------------------------------------

#: The bind mounts compared with runc: destination -> (source name, options).
PROPAGATION_BINDS = {
    "/m-rshared": ("alpha", ["rbind", "rshared"]),
    "/m-rslave": ("beta", ["rbind", "rslave"]),
    "/m-private": ("gamma", ["bind", "private"]),
    "/m-unbindable": ("delta", ["bind", "unbindable"]),
    "/m-plain": ("epsilon", ["rbind"]),
    "/m-file": ("given.txt", ["bind", "ro"]),
}


def _propagation_view(mountinfo: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Per mount point compared (the binds and "/"): the root field's last component and
    the kinds of its optional fields (``shared``, ``master``, ``unbindable``). Peer group
    numbers are dropped: they are the kernel's counters, different in any two systems."""
    view = {}
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 7 or (fields[4] not in PROPAGATION_BINDS and fields[4] != "/"):
            continue
        optional = fields[6:fields.index("-")]
        view[fields[4]] = (fields[3].rsplit("/", 1)[-1],
                           frozenset(tag.split(":", 1)[0] for tag in optional))
    return view


@pytest.mark.parametrize("root_propagation", ["", "shared"])
def test_mountinfo_roots_and_propagation_as_with_runc(bundles: Bundles, tmp_path: Path,
                                                      root_propagation: str) -> None:
    """A bind mount's root ends in its source's name, and the propagation its options
    ask for shows in mountinfo's optional fields, of the same kinds runc gives the same
    bundle; ``linux.rootfsPropagation`` shows on "/"."""
    runc = shutil.which("runc")
    if runc is None:
        pytest.skip("runc is not installed: nothing to compare with")
    sources = tmp_path / "sources"
    sources.mkdir()
    mounts = []
    for destination, (name, options) in PROPAGATION_BINDS.items():
        source = sources / name
        if name.endswith(".txt"):
            source.write_text("given\n")
        else:
            source.mkdir()
        mounts.append({"destination": destination, "type": "bind", "source": str(source),
                       "options": options})
    bundle = _with_mounts(bundles, bundles.make(["cat", "/proc/self/mountinfo"]), *mounts)
    if root_propagation:
        bundle = bundles.edit(bundle, linux__rootfsPropagation=root_propagation)
    ours = _propagation_view(bundles.run(bundle).check().stdout)
    theirs_run = subprocess.run([runc, "--root", str(tmp_path / "runc"), "run", "--bundle",
                                 str(bundle), f"prop-{os.getpid()}"], capture_output=True,
                                text=True, timeout=60)
    assert theirs_run.returncode == 0, theirs_run.stderr
    theirs = _propagation_view(theirs_run.stdout)
    assert set(ours) == set(theirs) == {"/", *PROPAGATION_BINDS}
    assert ours["/m-rshared"][1] == {"shared"} and ours["/m-unbindable"][1] == {"unbindable"}
    assert [ours[d][0] for d in PROPAGATION_BINDS] == [n for n, _ in PROPAGATION_BINDS.values()]
    if root_propagation:
        # The spec: a shared rootfs "belongs to a new peer group", which strongbox applies
        # to "/" after pivot_root. runc 1.1 sets it on the old root before binding the
        # rootfs (made private first, for pivot_root), so its "/" shows none: compare the
        # binds only, and check ours against the spec.
        assert ours.pop("/")[1] == {"shared"}
        theirs.pop("/")
    assert ours == theirs
