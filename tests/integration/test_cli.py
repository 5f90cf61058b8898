"""The runc-compatible command line: every command, its flags and its errors."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.bundle import make_bundle
from tests.framework.procs import qemu_pids, wait_until

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("factory_mode")]

LOOP = ["sh", "-c", 'trap "echo got-term; exit 3" TERM; echo started; '
                    "while true; do sleep 0.2; done"]


class Runtime:
    """`strongbox` with a private root; remembers ids to delete at the end."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp
        self.ids: list[str] = []
        self.n = 0

    def __call__(self, *args: str | Path, **kwargs: object) -> cli.Result:
        return cli.run("--root", self.root, *args, **kwargs)  # type: ignore[arg-type]

    def bundle(self, args: list[str] | None = None, **changes: object) -> Path:
        self.n += 1
        changes.setdefault("root__readonly", False)
        return make_bundle(self.tmp / f"b{self.n}", args or LOOP, **changes)

    def create(self, cid: str, bundle: Path | None = None, *extra: str,
               command: str = "create") -> cli.Result:
        self.ids.append(cid)
        pid_file = self.tmp / f"{cid}.pid"
        argv = cli.strongbox_argv("--root", self.root, command, "--bundle",
                                  bundle or self.bundle(), "--pid-file", pid_file, *extra, cid)
        return cli.run_to_files(argv, self.tmp / f"{cid}.out", self.tmp / f"{cid}.err")

    def output(self, cid: str) -> str:
        return (self.tmp / f"{cid}.out").read_text()

    def monitor_pid(self, cid: str) -> int:
        return int((self.tmp / f"{cid}.pid").read_text())

    def status(self, cid: str) -> str:
        return str(self("state", cid).check().json()["status"])

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "--force", cid)


@pytest.fixture
def rt(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[Runtime]:
    runtime = Runtime(no_leaks, tmp_path)
    yield runtime
    runtime.cleanup()
    assert not list((no_leaks / "containers").glob("*")) if (no_leaks / "containers").exists() \
        else True


def _wait_output(rt: Runtime, cid: str, text: str, timeout: float = 30) -> None:
    assert wait_until(lambda: text in rt.output(cid), timeout), rt.output(cid)


# --- the lifecycle ---------------------------------------------------------------------------

@pytest.mark.pool
@pytest.mark.q35
def test_create_start_kill_delete(rt: Runtime) -> None:
    rt.create("life").check()
    state = rt("state", "life").check().json()
    assert state["status"] == "created" and state["ociVersion"].startswith("1.")
    assert state["pid"] == rt.monitor_pid("life") and Path(f"/proc/{state['pid']}").exists()
    assert state["bundle"].startswith(str(rt.tmp))
    rt("start", "life").check()
    _wait_output(rt, "life", "started")
    assert rt.status("life") == "running"
    rt("kill", "life").check()  # default SIGTERM
    assert wait_until(lambda: rt.status("life") == "stopped", 30)
    assert "got-term" in rt.output("life")
    assert rt("state", "life").check().json()["pid"] == 0
    rt("delete", "life").check()
    cli.assert_one_line_error(rt("state", "life"), "life", "does not exist")


def test_monitor_exits_like_the_container(rt: Runtime) -> None:
    libc = ctypes.CDLL(None)
    libc.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: adopt the monitor, as conmon does
    try:
        rt.create("mirror", rt.bundle(["sh", "-c", "exit 42"])).check()
        pid = rt.monitor_pid("mirror")
        rt("start", "mirror").check()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 42
        rt.create("mirror2").check()
        pid = rt.monitor_pid("mirror2")
        rt("start", "mirror2").check()
        rt("kill", "mirror2", "KILL").check()
        _, status = os.waitpid(pid, 0)
        # PID 1 of its own pid namespace (runtime/ownerns.py), the monitor cannot die by a
        # signal of its own: it exits 128+n, what conmon and containerd's runc shim
        # report for a container killed by a signal.
        assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGKILL
    finally:
        libc.prctl(36, 0)


@pytest.mark.parametrize("name", ["KILL", "SIGKILL", "9", "kill"])
def test_kill_signal_spellings(rt: Runtime, name: str) -> None:
    cid = f"sig{name.lower()}"
    rt.create(cid).check()
    rt("start", cid).check()
    rt("kill", cid, name).check()
    assert wait_until(lambda: rt.status(cid) == "stopped", 30)


def test_kill_all(rt: Runtime) -> None:
    rt.create("killall", rt.bundle(["sh", "-c", "sleep 100 & sleep 100 & wait"])).check()
    rt("start", "killall").check()
    rt("kill", "--all", "killall", "KILL").check()
    assert wait_until(lambda: rt.status("killall") == "stopped", 30)


def test_errors_of_the_lifecycle(rt: Runtime) -> None:
    rt.create("errs").check()
    cli.assert_one_line_error(rt.create("errs"), "errs", "already exists")
    rt("start", "errs").check()
    cli.assert_one_line_error(rt("start", "errs"), "cannot start", "running")
    cli.assert_one_line_error(rt("delete", "errs"), "cannot delete", "running")
    cli.assert_one_line_error(rt("kill", "errs", "NOSUCHSIG"), "unknown signal", "NOSUCHSIG")
    rt("kill", "errs", "KILL").check()
    assert wait_until(lambda: rt.status("errs") == "stopped", 30)
    cli.assert_one_line_error(rt("kill", "errs"), "cannot kill", "stopped")
    cli.assert_one_line_error(rt("exec", "errs", "true"), "cannot exec", "stopped")
    rt("delete", "errs").check()


@pytest.mark.parametrize("command", [["start"], ["kill"], ["delete"], ["state"], ["pause"],
                                     ["resume"], ["ps"], ["exec", "--", "true"],
                                     ["events", "--stats"], ["update", "--pids-limit", "5"]])
def test_unknown_id(rt: Runtime, command: list[str]) -> None:
    argv = [command[0], "ghost", *command[1:]]
    cli.assert_one_line_error(rt(*argv), "ghost", "does not exist")


def test_delete_created_without_force_and_running_with_force(rt: Runtime) -> None:
    rt.create("del1").check()
    rt("delete", "del1").check()  # created, never started: allowed, as in runc
    rt.create("del2").check()
    rt("start", "del2").check()
    rt("delete", "--force", "del2").check()
    cli.assert_one_line_error(rt("state", "del2"), "does not exist")
    assert wait_until(lambda: not qemu_pids(str(rt.root)), 10)


def test_run_detached_and_foreground(rt: Runtime) -> None:
    rt.create("rund", rt.bundle(), "--detach", command="run").check()
    assert rt.status("rund") == "running"
    assert Path(f"/proc/{rt.monitor_pid('rund')}").exists()
    result = rt("run", "--bundle", rt.bundle(["sh", "-c", "echo fg; exit 9"]), "runf")
    assert result.returncode == 9 and result.stdout == "fg\n"
    cli.assert_one_line_error(rt("state", "runf"), "does not exist")  # run deletes it


def test_list_formats(rt: Runtime) -> None:
    rt.create("lista").check()
    rt.create("listb").check()
    rt("start", "listb").check()
    assert rt("list", "--quiet").check().stdout.split() == ["lista", "listb"]
    states = {s["id"]: s["status"] for s in rt("list", "--format", "json").check().json()}
    assert states == {"lista": "created", "listb": "running"}
    table = rt("list").check().stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"]
    assert len(table) == 3


def test_state_never_hangs_on_a_wedged_monitor(rt: Runtime) -> None:
    rt.create("wedged").check()
    rt("start", "wedged").check()
    pid = rt.monitor_pid("wedged")
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert rt.status("wedged") == "running"  # from the record, after a short timeout
        assert rt("list", "--quiet").check().stdout.split() == ["wedged"]
        assert time.monotonic() - started < 20
    finally:
        os.kill(pid, signal.SIGCONT)


# --- exec, ps, pause, update, events ----------------------------------------------------------

@pytest.mark.pool
@pytest.mark.q35
def test_exec(rt: Runtime) -> None:
    rt.create("ex", rt.bundle(process__env=["PATH=/bin", "BASE=1"])).check()
    rt("start", "ex").check()
    result = rt("exec", "--env", "EXTRA=2", "--cwd", "/tmp", "ex", "sh", "-c",
                "echo $BASE $EXTRA; pwd; echo err >&2; exit 4")
    assert result.returncode == 4
    assert result.stdout.splitlines() == ["1 2", "/tmp"]
    assert "err" in result.stderr
    assert "uid=1000" in rt("exec", "--user", "1000:1000", "ex", "id").check().stdout
    assert rt("exec", "ex", "cat", input="piped\n").check().stdout == "piped\n"
    missing = rt("exec", "ex", "no-such-tool")
    assert missing.returncode == 127
    process = rt.tmp / "process.json"
    process.write_text(json.dumps({"args": ["sh", "-c", "echo from-process-file"], "cwd": "/",
                                   "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]}))
    assert rt("exec", "--process", process, "ex").check().stdout == "from-process-file\n"
    # Large but legal: 600 KB of arguments (more than a control packet's default buffer;
    # one argument may not exceed the kernel's 128 KiB).
    process.write_text(json.dumps({"args": ["sh", "-c", 'echo $#', "sh", *["x" * 100_000] * 6],
                                   "cwd": "/", "user": {"uid": 0, "gid": 0},
                                   "env": ["PATH=/bin"]}))
    assert rt("exec", "--process", process, "ex").check().stdout == "6\n"


def test_exec_detached_with_pid_file(rt: Runtime) -> None:
    rt.create("exd").check()
    rt("start", "exd").check()
    pid_file = rt.tmp / "exec.pid"
    rt("exec", "--detach", "--pid-file", pid_file, "exd", "sh", "-c",
       "echo detached > /tmp/marker").check()
    assert pid_file.read_text().isdigit()
    assert wait_until(lambda: rt("exec", "exd", "cat", "/tmp/marker").stdout == "detached\n",
                      30)


def test_exec_with_tty(rt: Runtime) -> None:
    pexpect = pytest.importorskip("pexpect")
    rt.create("ext").check()
    rt("start", "ext").check()
    argv = cli.strongbox_argv("--root", rt.root, "exec", "--tty", "ext", "sh")
    child = pexpect.spawn(argv[0], argv[1:], timeout=60, env={**os.environ, "PS1": "# "})
    try:
        child.sendline("tty; stty size")
        child.expect("/dev/pts/")
        child.sendline("exit 6")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 6


def _lineage(pid: int) -> list[int]:
    """``pid`` and its ancestors on the host, up to init."""
    chain = [pid]
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        chain.append(pid)
    return chain


def test_ps(rt: Runtime) -> None:
    """JSON: host pids, all of this container's own processes (its monitor, the pid
    `state` gives, and what it runs: QEMU), never another host process, since clients
    (docker top through containerd's runc shim) look them up on the host. The table:
    the guest's processes."""
    rt.create("pss").check()
    rt("start", "pss").check()
    pids = rt("ps", "--format", "json", "pss").check().json()
    monitor = rt.monitor_pid("pss")
    assert pids[0] == monitor == rt("state", "pss").check().json()["pid"]
    assert all(monitor in _lineage(pid) for pid in pids), pids
    qemu = qemu_pids(str(rt.root))
    assert qemu and set(qemu) & set(pids), (qemu, pids)
    table = rt("ps", "pss").check().stdout.splitlines()
    assert table[0].split()[:3] == ["UID", "PID", "PPID"]
    assert any("sh -c" in line for line in table[1:])


@pytest.mark.pool
@pytest.mark.q35
def test_pause_resume(rt: Runtime) -> None:
    rt.create("pz").check()
    rt("start", "pz").check()
    rt("pause", "pz").check()
    assert rt.status("pz") == "paused"
    cli.assert_one_line_error(rt("pause", "pz"), "cannot pause", "paused")
    rt("resume", "pz").check()
    assert rt.status("pz") == "running"
    cli.assert_one_line_error(rt("resume", "pz"), "cannot resume", "running")


def test_update_and_events(rt: Runtime) -> None:
    rt.create("upd").check()
    rt("start", "upd").check()
    rt("update", "--pids-limit", "37", "--memory", "100m", "upd").check()
    event = json.loads(rt("events", "--stats", "upd").check().stdout)
    assert event["type"] == "stats" and event["id"] == "upd"
    assert event["data"]["pids"]["limit"] == 37
    assert event["data"]["memory"]["usage"]["limit"] == 100 * 1024 * 1024
    assert event["data"]["memory"]["usage"]["usage"] > 0
    resources = rt.tmp / "res.json"
    resources.write_text(json.dumps({"pids": {"limit": 41}}))
    rt("update", "-r", resources, "upd").check()
    assert json.loads(rt("events", "--stats", "upd").stdout)["data"]["pids"]["limit"] == 41
    cli.assert_one_line_error(rt("update", "upd"), "nothing to change")
    cli.assert_one_line_error(rt("update", "--memory", "lots", "upd"), "--memory")


def test_events_stream(rt: Runtime) -> None:
    rt.create("evs").check()
    rt("start", "evs").check()
    proc = subprocess.Popen(cli.strongbox_argv("--root", rt.root, "events", "--interval",
                                               "300ms", "evs"), stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert all(e["type"] == "stats" for e in lines)
        rt("kill", "evs", "KILL").check()
        assert proc.wait(timeout=30) == 0  # the stream ends with the container
    finally:
        if proc.poll() is None:
            proc.kill()


# --- terminals ---------------------------------------------------------------------------------

def _console_listener(path: Path) -> tuple[socket.socket, list[int]]:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    received: list[int] = []

    def accept() -> None:
        conn, _ = server.accept()
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 1024, 1)
        received.extend(fds)
        conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return server, received


def test_console_socket(rt: Runtime) -> None:
    path = rt.tmp / "console.sock"
    server, received = _console_listener(path)
    try:
        bundle = rt.bundle(["sh"], process__terminal=True,
                           process__env=["PATH=/bin", "PS1=in-console# "])
        rt.create("cons", bundle, "--console-socket", str(path)).check()
        assert wait_until(lambda: bool(received), 10)
        master = received[0]
        rt("start", "cons").check()
        os.write(master, b"echo $((40+2))\n")
        seen = b""
        deadline = time.monotonic() + 30
        while b"42" not in seen and time.monotonic() < deadline:
            seen += os.read(master, 4096)
        assert b"42" in seen
        os.write(master, b"exit 0\n")
        assert wait_until(lambda: rt.status("cons") == "stopped", 30)
        os.close(master)
    finally:
        server.close()


def test_terminal_rules(rt: Runtime) -> None:
    bundle = rt.bundle(["sh"], process__terminal=True)
    cli.assert_one_line_error(rt.create("tty1", bundle), "--console-socket")
    cli.assert_one_line_error(rt.create("tty2", rt.bundle(), "--console-socket", "/x"),
                              "--console-socket", "terminal is false")


# --- killed monitors ---------------------------------------------------------------------------

@pytest.mark.parametrize("when", ["created", "running", "paused"])
def test_sigkill_of_monitor_then_delete_force(rt: Runtime, when: str) -> None:
    cid = f"mk-{when}"
    rt.create(cid).check()
    if when != "created":
        rt("start", cid).check()
    if when == "paused":
        rt("pause", cid).check()
    os.kill(rt.monitor_pid(cid), signal.SIGKILL)
    assert wait_until(lambda: not qemu_pids(str(rt.root)), 10), "QEMU outlived its monitor"
    assert rt.status(cid) == "stopped"
    rt("delete", "--force", cid).check()
    assert not (rt.root / "containers" / cid).exists()
    assert not list((rt.root / "vms").iterdir())
    assert str(rt.root) not in Path("/proc/self/mountinfo").read_text()


def test_sigkill_of_qemu_under_the_monitor(rt: Runtime) -> None:
    """The monitor notices its VM died: the container stopped (137), a plain delete cleans up."""
    rt.create("qk", rt.bundle(["sleep", "600"])).check()
    rt("start", "qk").check()
    (qemu,) = qemu_pids(str(rt.root))
    os.kill(qemu, signal.SIGKILL)
    assert wait_until(lambda: rt.status("qk") == "stopped", 15)
    rt("delete", "qk").check()
    assert not (rt.root / "containers" / "qk").exists()
    assert not list((rt.root / "vms").iterdir())
    assert str(rt.root) not in Path("/proc/self/mountinfo").read_text()


def test_sigkill_of_monitor_while_creating(rt: Runtime) -> None:
    rt.ids.append("mkc")
    argv = cli.strongbox_argv("--root", rt.root, "create", "--bundle", rt.bundle(), "mkc")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert wait_until(lambda: bool(qemu_pids(str(rt.root))), 30)
    state = json.loads((rt.root / "containers" / "mkc" / "state.json").read_text())
    if state["monitor_pid"]:
        os.kill(state["monitor_pid"], signal.SIGKILL)
    result = proc.wait(timeout=60)
    assert wait_until(lambda: not qemu_pids(str(rt.root)), 10)
    if result == 0:  # created before the kill landed: delete cleans up
        rt("delete", "--force", "mkc").check()
    assert not (rt.root / "containers" / "mkc").exists()  # a failed create leaves no record
    assert not list((rt.root / "vms").iterdir())


# --- documents and global flags ----------------------------------------------------------------

def test_spec(rt: Runtime, tmp_path: Path) -> None:
    rt("spec", "--bundle", tmp_path).check()
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"] and spec["root"]["path"] == "rootfs"
    cli.assert_one_line_error(rt("spec", "--bundle", tmp_path), "exists")
    rootless = tmp_path / "rootless"
    rootless.mkdir()
    rt("spec", "--rootless", "--bundle", rootless).check()
    namespaces = json.loads((rootless / "config.json").read_text())["linux"]["namespaces"]
    assert {"type": "user"} in namespaces


def test_features_and_version(rt: Runtime) -> None:
    features = rt("features").check().json()
    assert features["ociVersionMin"] and features["linux"]["cgroup"]["v2"] is True
    assert "CAP_CHOWN" in features["linux"]["capabilities"]
    assert rt("--version").check().stdout.startswith("strongbox version")


def test_log_file_json(rt: Runtime) -> None:
    log = rt.tmp / "runtime.log"
    result = rt("--log", log, "--log-format", "json", "start", "nobody")
    assert result.returncode == 1
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r["level"] == "error" and "nobody" in r["msg"] for r in records)


def test_systemd_cgroup_is_accepted(rt: Runtime) -> None:
    assert rt("--systemd-cgroup", "list").check().stdout.startswith("ID")


# --- more flags ------------------------------------------------------------------------------

def test_exec_privilege_flags(rt: Runtime) -> None:
    rt.create("exf").check()
    rt("start", "exf").check()
    rt("exec", "exf", "touch", "/tmp/owned").check()
    denied = rt("exec", "exf", "chown", "1000", "/tmp/owned")
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr
    rt("exec", "--cap", "CAP_CHOWN", "exf", "chown", "1000", "/tmp/owned").check()
    status = rt("exec", "--no-new-privs", "exf", "grep", "NoNewPrivs", "/proc/self/status")
    assert status.check().stdout.split() == ["NoNewPrivs:", "1"]
    groups = rt("exec", "--user", "1000:1000", "--additional-gids", "5", "exf", "id")
    assert "5(tty)" in groups.check().stdout


def test_update_cpu_limits_inside_the_guest(rt: Runtime) -> None:
    bundle = rt.bundle(linux__namespaces=[{"type": t} for t in
                                          ("pid", "ipc", "uts", "mount", "cgroup")])
    rt.create("cpu", bundle).check()
    rt("start", "cpu").check()
    rt("update", "--cpu-quota", "50000", "--cpu-period", "100000", "--cpuset-cpus", "0",
       "cpu").check()
    out = rt("exec", "cpu", "cat", "/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpuset.cpus")
    assert out.check().stdout.split() == ["50000", "100000", "0"]


def test_accepted_flags_and_foreground_pid_file(rt: Runtime) -> None:
    rt.create("acc", rt.bundle(), "--no-pivot", "--no-new-keyring").check()
    pid_file = rt.tmp / "fg.pid"
    result = rt("run", "--pid-file", pid_file, "--bundle", rt.bundle(["true"]), "fgpid")
    assert result.returncode == 0 and pid_file.read_text().isdigit()
    kept = rt("run", "--keep", "--bundle", rt.bundle(["true"]), "kept")
    assert kept.returncode == 0
    rt.ids.append("kept")
    assert rt.status("kept") == "stopped"


def test_overlay_from_the_configuration_file(rt: Runtime) -> None:
    config = rt.tmp / "config.toml"
    config.write_text("[runtime]\noverlay = true\n")
    bundle = rt.bundle(["sh", "-c", "echo x > /written"])
    rt("--config", config, "run", "--bundle", bundle, "ovl").check()
    assert not (bundle / "rootfs" / "written").exists()


def test_log_file_text(rt: Runtime) -> None:
    log = rt.tmp / "text.log"
    assert rt("--log", log, "kill", "nobody").returncode == 1
    assert 'level=error msg="container nobody does not exist"' in log.read_text()
