"""containerd 1.6 runs strongbox through its shim: `ctr`, pods, events, cleanup."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework.containerd import IMAGE, NAMESPACE, RUNTIME, Containerd, ctr_daemon
from tests.framework.procs import pids_with_cmdline, qemu_pids, wait_until

pytestmark = [
    pytest.mark.vm,
    pytest.mark.usefixtures("factory_mode"),
    pytest.mark.skipif(shutil.which("containerd") is None, reason="containerd not installed"),
]


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory, factory_mode: str,
               guest_assets: dict[str, Path]) -> Iterator[Containerd]:
    with ctr_daemon(tmp_path_factory.mktemp("ctrd")) as daemon:
        yield daemon
    assert wait_until(lambda: not _shims(daemon), 10)


def _shims(daemon: Containerd) -> list[int]:
    return pids_with_cmdline("strongbox.shim.main", str(daemon.address))


def _run(containerd: Containerd, cid: str, *args: str, options: tuple[str, ...] = (),
         timeout: float = 180) -> subprocess.CompletedProcess[bytes]:
    return containerd.ctr("run", "--rm", "--runtime", RUNTIME, *options, IMAGE, cid, *args,
                          timeout=timeout)


def _wait_status(containerd: Containerd, cid: str, status: str, timeout: float = 30) -> bool:
    def check() -> bool:
        out = containerd.ctr("task", "ls").stdout.decode()
        return any(line.split()[:1] == [cid] and status in line.split()
                   for line in out.splitlines())
    return wait_until(check, timeout)


@pytest.mark.pool
@pytest.mark.q35
def test_run_echo(containerd: Containerd) -> None:
    result = _run(containerd, "echo1", "echo", "hi")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == b"hi\n"


@pytest.mark.parametrize("code", [0, 3, 42])
def test_exit_code_passes_through(containerd: Containerd, code: int) -> None:
    assert _run(containerd, f"exit{code}", "sh", "-c", f"exit {code}").returncode == code


@pytest.mark.pool
@pytest.mark.q35
def test_stdin_round_trip(containerd: Containerd) -> None:
    data = os.urandom(200_000)
    result = containerd.ctr("run", "--rm", "--runtime", RUNTIME, IMAGE, "cat1", "sh", "-c",
                            "cat | sha256sum", input=data)
    import hashlib

    assert result.stdout.decode().split()[0] == hashlib.sha256(data).hexdigest()


def test_run_with_terminal(containerd: Containerd) -> None:
    pexpect = pytest.importorskip("pexpect")
    argv = containerd.ctr_argv("run", "--rm", "-t", "--runtime", RUNTIME, IMAGE, "tty1", "sh")
    child = pexpect.spawn(argv[0], argv[1:], timeout=120, env=containerd.env)
    try:
        child.expect("# ")
        child.sendline("echo $((20+22)); tty")
        child.expect("42")
        child.setwinsize(33, 99)
        time.sleep(0.5)
        child.sendline("stty size")
        child.expect("33 99")
        child.sendline("exit 7")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 7


def test_detached_task_lifecycle(containerd: Containerd) -> None:
    run = containerd.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, "life", "sh", "-c",
                         'trap "exit 9" TERM; while true; do sleep 0.2; done')
    assert run.returncode == 0, run.stderr.decode()
    try:
        assert _wait_status(containerd, "life", "RUNNING")
        # Host pids only, as containerd's clients read them (docker top filters the
        # host's ps by them): the task's own pid, the VMM, never a guest pid that would
        # name some other host process.
        table = containerd.ctr("task", "ps", "life").stdout.decode().splitlines()
        assert table[0].split()[0] == "PID"
        listed = [int(line.split()[0]) for line in table[1:]]
        task_pid = next(int(line.split()[1]) for line in
                        containerd.ctr("task", "ls").stdout.decode().splitlines()
                        if line.split()[:1] == ["life"])
        assert listed == [task_pid]
        assert task_pid in qemu_pids(str(containerd.sbroot))
        # the host cgroup ctr's spec names (/<namespace>/<id>) holds QEMU and the shim
        def parent(pid: int) -> int:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])

        shim = parent(task_pid)  # the jail's waiter is a fork of the shim: go to the top
        while "strongbox.shim" in Path(f"/proc/{parent(shim)}/cmdline").read_text():
            shim = parent(shim)
        assert "strongbox.shim" in Path(f"/proc/{shim}/cmdline").read_text()
        for pid in (task_pid, shim):
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
            assert any((line.endswith(f":/{NAMESPACE}/life") and ":memory:" in line)
                       or line == f"0::/{NAMESPACE}/life" for line in lines), lines
        execd = containerd.ctr("task", "exec", "--exec-id", "e1", "life", "sh", "-c",
                               "echo from-exec; hostname; exit 4")
        assert execd.returncode == 4
        assert execd.stdout.decode().splitlines()[0] == "from-exec"
        assert containerd.ctr("task", "pause", "life").returncode == 0
        assert _wait_status(containerd, "life", "PAUSED")
        assert containerd.ctr("task", "resume", "life").returncode == 0
        assert _wait_status(containerd, "life", "RUNNING")
        metrics = containerd.ctr("task", "metrics", "--format", "json", "life")
        assert metrics.returncode == 0, metrics.stderr.decode()
        data = json.loads(metrics.stdout)
        assert data["memory"]["usage"] > 0 and data["pids"]["current"] >= 1
        assert containerd.ctr("task", "kill", "life").returncode == 0  # default SIGTERM
        assert _wait_status(containerd, "life", "STOPPED")
        deleted = containerd.ctr("task", "delete", "life")
        assert deleted.returncode == 0, deleted.stderr.decode()
    finally:
        containerd.ctr("task", "delete", "-f", "life")
        containerd.ctr("container", "delete", "life")


def test_exec_with_terminal_and_kill_sigkill(containerd: Containerd) -> None:
    pexpect = pytest.importorskip("pexpect")
    assert containerd.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, "ext", "sleep",
                          "600").returncode == 0
    try:
        argv = containerd.ctr_argv("task", "exec", "-t", "--exec-id", "sh1", "ext", "sh")
        child = pexpect.spawn(argv[0], argv[1:], timeout=120, env=containerd.env)
        try:
            child.sendline("echo exec-$((5*5)); exit 0")
            child.expect("exec-25")
            child.expect(pexpect.EOF)
        finally:
            child.close()
        assert containerd.ctr("task", "kill", "-s", "KILL", "ext").returncode == 0
        assert _wait_status(containerd, "ext", "STOPPED")
    finally:
        containerd.ctr("task", "delete", "-f", "ext")
        containerd.ctr("container", "delete", "ext")


def test_run_detached_then_attach(containerd: Containerd) -> None:
    assert containerd.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, "att", "sh", "-c",
                          "sleep 2; echo late-output; sleep 1").returncode == 0
    try:
        attach = containerd.ctr("task", "attach", "att", timeout=60)
        assert b"late-output" in attach.stdout
    finally:
        containerd.ctr("task", "delete", "-f", "att")
        containerd.ctr("container", "delete", "att")


def test_pod_shares_one_vm_and_one_shim(containerd: Containerd) -> None:
    pod = ("--annotation", "io.kubernetes.cri.sandbox-id=pod1")
    sandbox = containerd.ctr("run", "-d", "--runtime", RUNTIME, *pod, "--annotation",
                             "io.kubernetes.cri.container-type=sandbox", IMAGE, "pod1",
                             "sleep", "600")
    assert sandbox.returncode == 0, sandbox.stderr.decode()
    try:
        qemus_before = qemu_pids(str(containerd.sbroot))
        app = containerd.ctr("run", "-d", "--runtime", RUNTIME, *pod, "--annotation",
                             "io.kubernetes.cri.container-type=container", IMAGE, "app1",
                             "sleep", "600")
        assert app.returncode == 0, app.stderr.decode()
        assert qemu_pids(str(containerd.sbroot)) == qemus_before  # no new VM
        assert len(qemus_before) == 1
        bundles = containerd.base / "state" / "io.containerd.runtime.v2.task" / "sbtest"
        assert (bundles / "pod1" / "address").read_text() == \
            (bundles / "app1" / "address").read_text()
        assert (bundles / "pod1" / "shim.pid").exists()
        # Each container sees only its own processes.
        ps = containerd.ctr("task", "exec", "--exec-id", "p1", "app1", "ps", "-o", "comm")
        names = ps.stdout.decode().split()[1:]
        assert names.count("sleep") == 1 and "ps" in names
    finally:
        for cid in ("app1", "pod1"):
            containerd.ctr("task", "kill", "-s", "KILL", cid)
            containerd.ctr("task", "delete", "-f", cid)
            containerd.ctr("container", "delete", cid)


@pytest.mark.pool
@pytest.mark.q35
def test_sigkill_of_shim_then_delete_cleans_up(containerd: Containerd, factory_mode: str,
                                              request: pytest.FixtureRequest) -> None:
    """Also with a pooled VM: the shim held its claim, so its death ends that VM (keeper
    and QEMU), and only that one."""
    from tests.framework.pool import pool_status

    pool = request.getfixturevalue("pool_config") if factory_mode == "pool" else None
    before = set(pool_status(pool)["in_use_vms"]) if pool else set()
    assert containerd.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, "doomed", "sleep",
                          "600").returncode == 0
    pooled = set(pool_status(pool)["in_use_vms"]) - before if pool else set()
    assert len(pooled) == (1 if pool else 0), pooled
    bundle = containerd.base / "state" / "io.containerd.runtime.v2.task" / "sbtest" / "doomed"
    shim_pid = int((bundle / "shim.pid").read_text())
    address = (bundle / "address").read_text().removeprefix("unix://")
    os.kill(shim_pid, signal.SIGKILL)
    assert wait_until(lambda: not qemu_pids(str(containerd.sbroot))
                      and not any(pids_with_cmdline(vm) for vm in pooled), 10)
    containerd.ctr("task", "delete", "-f", "doomed")
    containerd.ctr("container", "delete", "doomed")
    assert containerd.ctr("container", "ls", "-q").stdout.decode().split().count("doomed") == 0
    # containerd runs the shim's `delete` action when the connection drops: asynchronously.
    vms = containerd.sbroot / "vms"
    assert wait_until(lambda: not (vms.exists() and list(vms.iterdir())), 15)
    assert wait_until(lambda: not Path(address).exists(), 15)
    assert wait_until(lambda: not bundle.exists(), 15)
    assert str(containerd.sbroot) not in Path("/proc/self/mountinfo").read_text()


def test_containerd_restart_reconnects(containerd: Containerd) -> None:
    assert containerd.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, "survivor", "sh", "-c",
                          "while true; do sleep 0.2; done").returncode == 0
    try:
        containerd.restart()
        assert _wait_status(containerd, "survivor", "RUNNING", timeout=60)
        execd = containerd.ctr("task", "exec", "--exec-id", "after", "survivor", "echo",
                               "still-here")
        assert execd.stdout == b"still-here\n"
    finally:
        containerd.ctr("task", "kill", "-s", "KILL", "survivor")
        _wait_status(containerd, "survivor", "STOPPED")
        containerd.ctr("task", "delete", "-f", "survivor")
        containerd.ctr("container", "delete", "survivor")


def test_events_in_order(containerd: Containerd) -> None:
    events = subprocess.Popen(containerd.ctr_argv("events"), stdout=subprocess.PIPE,
                              env=containerd.env, text=True)
    try:
        time.sleep(0.5)
        assert _run(containerd, "evt", "sh", "-c", "exit 0").returncode == 0
        topics: list[str] = []
        deadline = time.monotonic() + 30
        assert events.stdout is not None
        while "/tasks/delete" not in topics and time.monotonic() < deadline:
            line = events.stdout.readline()
            match = re.search(r"(/tasks/[a-z-]+)", line)
            if (match and " evt" in line) or (match and "evt" in line):
                topics.append(match.group(1))
        assert [t for t in topics if t in ("/tasks/create", "/tasks/start", "/tasks/exit",
                                           "/tasks/delete")] == \
            ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
    finally:
        events.kill()
        events.wait()


def _collect_topics(containerd: Containerd, cid: str, action: object, until: str,
                    timeout: float = 60, count: int = 1) -> list[str]:
    """Run ``action`` while `ctr events` listens; the topics of ``cid``'s events, in order."""
    events = subprocess.Popen(containerd.ctr_argv("events"), stdout=subprocess.PIPE,
                              env=containerd.env, text=True)
    topics: list[str] = []
    try:
        time.sleep(0.5)
        action()  # type: ignore[operator]
        deadline = time.monotonic() + timeout
        assert events.stdout is not None
        while topics.count(until) < count and time.monotonic() < deadline:
            line = events.stdout.readline()
            match = re.search(r"(/tasks/[a-z?-]+)", line)
            if match and re.search(rf'"container_id":"{cid}"|\b{cid}\b', line):
                topics.append(match.group(1))
    finally:
        events.kill()
        events.wait()
    return topics


def test_exec_and_pause_events(containerd: Containerd) -> None:
    def scenario() -> None:
        assert containerd.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, "evx", "sleep",
                              "600").returncode == 0
        assert containerd.ctr("task", "exec", "--exec-id", "x1", "evx", "true").returncode == 0
        assert containerd.ctr("task", "pause", "evx").returncode == 0
        assert containerd.ctr("task", "resume", "evx").returncode == 0
        containerd.ctr("task", "kill", "-s", "KILL", "evx")
        _wait_status(containerd, "evx", "STOPPED")
        containerd.ctr("task", "delete", "evx")

    try:
        topics = _collect_topics(containerd, "evx", scenario, "/tasks/delete", count=2)
    finally:
        containerd.ctr("task", "delete", "-f", "evx")
        containerd.ctr("container", "delete", "evx")
    expected = ["/tasks/create", "/tasks/start", "/tasks/exec-added", "/tasks/exec-started",
                "/tasks/exit", "/tasks/delete",  # the exec's exit and delete
                "/tasks/paused", "/tasks/resumed", "/tasks/exit", "/tasks/delete"]
    assert [t for t in topics if t in expected] == expected


def test_oom_event(containerd: Containerd) -> None:
    def scenario() -> None:
        result = containerd.ctr("run", "--rm", "--runtime", RUNTIME, "--memory-limit",
                                str(32 * 1024 * 1024), IMAGE, "oom1", "dd", "if=/dev/zero",
                                "of=/dev/null", "bs=96M", "count=1")
        assert result.returncode == 137, result.stderr.decode()

    topics = _collect_topics(containerd, "oom1", scenario, "/tasks/delete")
    assert "/tasks/oom" in topics
    assert topics.index("/tasks/oom") < topics.index("/tasks/exit")


def test_sigkill_of_qemu_under_the_shim_then_delete(containerd: Containerd) -> None:
    """The shim notices its VM died: every task of it exits, and delete cleans up."""
    assert containerd.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, "vmdeath", "sleep",
                          "600").returncode == 0
    bundle = containerd.base / "state" / "io.containerd.runtime.v2.task" / "sbtest" / "vmdeath"
    address = (bundle / "address").read_text().removeprefix("unix://")
    execd = subprocess.Popen(containerd.ctr_argv("task", "exec", "--exec-id", "x1", "vmdeath",
                                                 "sleep", "600"), env=containerd.env)
    try:
        assert wait_until(lambda: "x1" in containerd.ctr("task", "ps", "vmdeath").stdout.decode()
                          or len(qemu_pids(str(containerd.sbroot))) == 1, 30)
        time.sleep(1)
        (qemu,) = qemu_pids(str(containerd.sbroot))
        os.kill(qemu, signal.SIGKILL)
        assert _wait_status(containerd, "vmdeath", "STOPPED", timeout=15)
        assert execd.wait(timeout=15) == 128 + signal.SIGKILL  # the exec's exit came too
    finally:
        if execd.poll() is None:
            execd.kill()
            execd.wait()
    deleted = containerd.ctr("task", "delete", "vmdeath")
    assert deleted.returncode == 0, deleted.stderr.decode()
    removed = containerd.ctr("container", "delete", "vmdeath")
    assert removed.returncode == 0, removed.stderr.decode()
    vms = containerd.sbroot / "vms"
    assert wait_until(lambda: not (vms.exists() and list(vms.iterdir())), 15)
    assert wait_until(lambda: not Path(address).exists(), 15)
    assert wait_until(lambda: not bundle.exists(), 15)
    assert str(containerd.sbroot) not in Path("/proc/self/mountinfo").read_text()
