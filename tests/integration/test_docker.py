"""Docker 20.10 (Debian's docker.io) drives strongbox through containerd's runc shim.

One private dockerd serves the session (tests/framework/docker.py); each
module pass (cold boots, then template clones) registers nothing new, it
only points the runtime wrapper at that mode's configuration. VM boots are
the cost here, so the flows share few containers: ``box`` (one container
with every kind of mount, ``--network none``, and a 150 s exec running in
the background while the other checks go on), ``life`` (stop, restart, kill,
rm -f), and one each for ``run --rm``, ``-i`` and ``-it``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.framework.docker import IMAGE, Docker, installed, session_base
from tests.framework.procs import qemu_pids, wait_until

pexpect = pytest.importorskip("pexpect")  # a dev dependency; untyped

pytestmark = [
    pytest.mark.vm,
    pytest.mark.usefixtures("factory_mode"),
    pytest.mark.skipif(not installed(), reason="docker.io is not installed"),
]

RUN = ("run", "--runtime", "strongbox")
#: The long exec of the issue: all of its output arrives, however long it runs.
LONG_EXEC_SECONDS = 150


@pytest.fixture(scope="session")
def dockerd(guest_assets: dict[str, Path]) -> Iterator[Docker]:
    daemon = Docker(session_base())
    try:
        daemon.register()
        daemon.start()
        daemon.load_busybox()
        yield daemon
    finally:
        daemon.stop()
        daemon.cleanup()


@pytest.fixture(scope="module")
def docker(dockerd: Docker, factory_mode: str) -> Iterator[Docker]:
    """The session's daemon, its runtime in this module pass's mode; nothing left after it."""
    dockerd.use_config(os.environ.get("STRONGBOX_CONFIG"))
    yield dockerd
    ids = dockerd("ps", "-aq", check=True).stdout.split()
    if ids:
        dockerd("rm", "-f", *ids, timeout=300)
    assert wait_until(lambda: not qemu_pids(str(dockerd.sbroot)), 20)
    containers = list(dockerd.sbroot.glob("clients/*/containers/*"))
    assert not containers, f"strongbox state left behind: {containers}"


def _spawn(docker: Docker, *args: str, rows: int = 30, cols: int = 100) -> Any:
    return pexpect.spawn(docker.argv()[0], list(args), env=docker.env, encoding="utf-8",
                         dimensions=(rows, cols), timeout=60)


def _in_box(docker: Docker, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return docker("exec", "box", "sh", "-c", script, **kwargs)  # type: ignore[arg-type]


# --- box: one long-lived container for exec, mounts, logs, cp, pause, stats, top ---------


@dataclass
class Box:
    rw: Path
    ro: Path
    long_exec: subprocess.Popen[str]
    long_exec_started: float


@pytest.fixture(scope="module")
def box(docker: Docker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    rw = tmp_path_factory.mktemp("rw")
    ro = tmp_path_factory.mktemp("ro")
    (rw / "from-host").write_text("host wrote this\n")
    (ro / "readme").write_text("read only\n")
    docker("volume", "create", "sbxvol", check=True)
    docker(*RUN, "-d", "--name", "box", "--network", "none", "-v", f"{rw}:/rw",
           "-v", f"{ro}:/ro:ro", "-v", "sbxvol:/vol", "--tmpfs", "/scratch:size=8m",
           IMAGE, "sh", "-c", "echo started; echo on-stderr >&2; "
           "while :; do sleep 1; done", check=True)
    # The long exec runs while the other checks of box go on; its test comes last.
    long_exec = subprocess.Popen(
        docker.argv("exec", "box", "sh", "-c",
                    f"echo begin; sleep {LONG_EXEC_SECONDS}; echo done; exit 6"),
        env=docker.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield Box(rw, ro, long_exec, time.monotonic())
    finally:
        if long_exec.poll() is None:
            long_exec.kill()
        long_exec.communicate()
        docker("rm", "-f", "box", timeout=300)
        docker("volume", "rm", "sbxvol")


def test_exec_output_and_exit_code(docker: Docker, box: Box) -> None:
    result = _in_box(docker, "echo out; echo err >&2; exit 9")
    assert (result.returncode, result.stdout, result.stderr) == (9, "out\n", "err\n")
    assert docker("exec", "box", "no-such-binary").returncode in (126, 127)


def test_exec_interactive_round_trips_stdin(docker: Docker, box: Box) -> None:
    result = docker("exec", "-i", "box", "sh", "-c", "tr a-z A-Z", input="quiet words\n")
    assert (result.returncode, result.stdout) == (0, "QUIET WORDS\n")


def test_exec_tty_sized_from_the_first_byte_and_resized(docker: Docker,
                                                      box: Box) -> None:
    started = time.monotonic()
    child = _spawn(docker, "exec", "-it", "box", "sh", rows=27, cols=91)
    child.sendline("stty size; echo $((6*7))")
    child.expect("42")
    assert "27 91" in child.before
    assert time.monotonic() - started < 30  # no 120 s hang before the session is ready
    child.setwinsize(40, 120)
    time.sleep(0.5)
    child.sendline("stty size")
    child.expect(r"40 120")
    child.sendline("exit 5")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 5


def test_exec_detached(docker: Docker, box: Box) -> None:
    docker("exec", "-d", "box", "sh", "-c", "sleep 1; echo detached > /tmp/bg", check=True)
    assert wait_until(lambda: _in_box(docker, "cat /tmp/bg").stdout == "detached\n", 30)


def test_logs_keep_stdout_and_stderr_apart(docker: Docker, box: Box) -> None:
    assert wait_until(lambda: "started" in docker("logs", "box").stdout, 30)
    logs = docker("logs", "box", check=True)
    assert logs.stdout == "started\n"
    assert logs.stderr == "on-stderr\n"


def test_bind_mounts_rw_and_ro(docker: Docker, box: Box) -> None:
    assert _in_box(docker, "cat /rw/from-host").stdout == "host wrote this\n"
    _in_box(docker, "echo guest wrote this > /rw/from-guest", check=True)
    assert (box.rw / "from-guest").read_text() == "guest wrote this\n"
    assert _in_box(docker, "cat /ro/readme").stdout == "read only\n"
    refused = _in_box(docker, "echo no > /ro/new")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    assert not (box.ro / "new").exists()


def test_named_volume(docker: Docker, box: Box) -> None:
    _in_box(docker, "echo kept > /vol/file", check=True)
    mountpoint = docker("volume", "inspect", "-f", "{{.Mountpoint}}", "sbxvol",
                        check=True).stdout.strip()
    assert (Path(mountpoint) / "file").read_text() == "kept\n"


def test_tmpfs(docker: Docker, box: Box) -> None:
    mounts = _in_box(docker, "grep ' /scratch ' /proc/mounts", check=True).stdout
    assert mounts.split()[2] == "tmpfs" and "size=8192k" in mounts
    _in_box(docker, "echo x > /scratch/f && cat /scratch/f", check=True)


def test_network_none_has_only_loopback(docker: Docker, box: Box) -> None:
    devices = _in_box(docker, "tail -n +3 /proc/net/dev", check=True).stdout
    assert [line.split(":")[0].strip() for line in devices.splitlines()] == ["lo"]
    assert "UP" in _in_box(docker, "ip link show lo", check=True).stdout
    mode = docker("inspect", "-f", "{{.HostConfig.NetworkMode}}", "box", check=True)
    assert mode.stdout.strip() == "none"


def test_cp_in_and_out(docker: Docker, box: Box, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("copied in\n")
    docker("cp", str(tmp_path / "in.txt"), "box:/tmp/in.txt", check=True)
    assert _in_box(docker, "cat /tmp/in.txt").stdout == "copied in\n"
    _in_box(docker, "echo copied out > /tmp/out.txt", check=True)
    docker("cp", "box:/tmp/out.txt", str(tmp_path / "out.txt"), check=True)
    assert (tmp_path / "out.txt").read_text() == "copied out\n"


def test_pause_and_unpause(docker: Docker, box: Box) -> None:
    docker("pause", "box", check=True)
    try:
        status = docker("inspect", "-f", "{{.State.Status}}", "box", check=True)
        assert status.stdout.strip() == "paused"
        assert docker("exec", "box", "true").returncode != 0  # docker refuses, as for runc
    finally:
        docker("unpause", "box", check=True)
    status = docker("inspect", "-f", "{{.State.Status}}", "box", check=True)
    assert status.stdout.strip() == "running"
    assert _in_box(docker, "echo awake").stdout == "awake\n"


def _bytes(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)\s*([KMGT]?i?B)", text.strip()).groups()  # type: ignore[union-attr]
    scale = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
             "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
    return float(number) * scale


def test_stats_memory_is_the_vms(docker: Docker, box: Box) -> None:
    # The memory docker reports is read from the container's cgroup, which under
    # strongbox is the host cgroup that QEMU and the monitor are placed in (issue 12,
    # "host cgroups"): nonzero (a VM's RAM is in use) and below the host's total
    # (not host-wide numbers).
    stats = docker("stats", "--no-stream", "--format", "{{.MemUsage}}", "box", check=True)
    used = _bytes(stats.stdout.split("/")[0])
    total = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    assert 0 < used < total, stats.stdout


def _top(docker: Docker) -> tuple[list[str], list[dict[str, str]]]:
    """``docker top box`` as its lines and rows (CMD, the last column, may hold spaces)."""
    lines = docker("top", "box", check=True).stdout.splitlines()
    header = lines[0].split()
    rows = [dict(zip(header, line.split(None, len(header) - 1), strict=True))
            for line in lines[1:]]
    return lines, rows


def test_top_never_lists_host_processes(docker: Docker, box: Box) -> None:
    lines, rows = _top(docker)
    pids = {int(row["PID"]) for row in rows}
    assert docker.proc is not None
    outsiders = {1, os.getpid(), docker.proc.pid}  # the host's init, this test, dockerd
    assert not pids & outsiders, lines
    assert not any(row["CMD"].split()[0].endswith(("dockerd", "containerd")) for row in rows)


def test_top_lists_what_stands_for_the_container_on_the_host(docker: Docker, box: Box) -> None:
    """Docker builds ``top`` from the host's ps(1), filtered by the pids ``strongbox ps``
    reports: the monitor and QEMU. The guest's processes cannot appear there (they are
    the VM's); ``docker exec box ps`` lists those."""
    lines, rows = _top(docker)
    assert any("qemu-system" in row["CMD"] for row in rows), lines
    assert all("qemu-system" in row["CMD"] or "strongbox" in row["CMD"] for row in rows), lines


def test_runc_list_in_dockers_runtime_root_does_not_complain(docker: Docker,
                                                             box: Box) -> None:
    runc_root = docker.exec_root / "runtime-runc" / "moby"
    listed = subprocess.run(["runc", "--root", str(runc_root), "list"], capture_output=True,
                            text=True, timeout=30)
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    box_id = docker("inspect", "-f", "{{.Id}}", "box", check=True).stdout.strip()
    ours = subprocess.run([sys.executable, "-m", "strongbox", "--root", str(runc_root),
                           "list", "-q"],
                          capture_output=True, text=True, timeout=30, env=docker.env)
    assert box_id in ours.stdout.split(), ours


# --- one-shot containers ---------------------------------------------------------------


def test_run_rm_prints_its_output_and_exits_with_its_code(docker: Docker) -> None:
    result = docker(*RUN, "--rm", "--name", "once", IMAGE, "sh", "-c",
                    "echo hello from docker; uname -r; echo oops >&2; exit 3")
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "hello from docker"
    assert lines[1].startswith("6.1.")  # the guest's kernel, not the host's
    assert "oops" in result.stderr
    assert "once" not in docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout
    assert docker(*RUN, "--rm", IMAGE, "true").returncode == 0


def test_run_interactive_round_trips_stdin(docker: Docker) -> None:
    data = "".join(f"line {i}\n" for i in range(2000))
    result = docker(*RUN, "--rm", "-i", IMAGE, "sh", "-c", "cat; echo end-of-input",
                    input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data + "end-of-input\n"


def test_run_tty_gets_a_terminal_of_the_callers_size(docker: Docker) -> None:
    child = _spawn(docker, *RUN, "--rm", "-it", IMAGE, "sh", rows=33, cols=111)
    child.sendline("tty; stty size; echo $((6*7))")
    child.expect("42")
    before = child.before
    # a terminal (the guest names it /dev/console, bound from the same pty), of our size
    assert "not a tty" not in before and "\n/dev/" in before and "33 111" in before, before
    child.sendline("exit 4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 4


# --- life: stop, restart, kill, rm -f ----------------------------------------------------


def _status(docker: Docker, name: str) -> tuple[str, int]:
    out = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name, check=True)
    status, code = out.stdout.split()
    return status, int(code)


def test_stop_restart_kill_rm_force(docker: Docker) -> None:
    docker(*RUN, "-d", "--name", "life", IMAGE, "sh", "-c",
           'trap "echo stopping; exit 0" TERM; echo up; while :; do sleep 1; done',
           check=True)
    try:
        assert wait_until(lambda: "up" in docker("logs", "life").stdout, 30)
        started = time.monotonic()
        docker("stop", "-t", "30", "life", check=True)
        assert time.monotonic() - started < 30  # the trap ran: no SIGKILL needed
        assert _status(docker, "life") == ("exited", 0)
        assert "stopping" in docker("logs", "life").stdout

        docker("restart", "-t", "30", "life", check=True)
        assert wait_until(lambda: docker("logs", "life").stdout.count("up") == 2, 60)
        assert _status(docker, "life") == ("running", 0)

        docker("kill", "life", check=True)
        assert wait_until(lambda: _status(docker, "life")[0] == "exited", 30)
        assert _status(docker, "life") == ("exited", 137)

        docker("start", "life", check=True)
        assert _status(docker, "life")[0] == "running"
    finally:
        docker("rm", "-f", "life", check=True)
    assert "life" not in docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout


# --- box's long exec, last: it ran while everything above went on ---------------------


def test_exec_of_150_s_gets_all_its_output(docker: Docker, box: Box) -> None:
    """Last of box's tests: the exec the fixture started has run all along."""
    stdout, stderr = box.long_exec.communicate(timeout=LONG_EXEC_SECONDS + 120)
    elapsed = time.monotonic() - box.long_exec_started
    assert (box.long_exec.returncode, stdout) == (6, "begin\ndone\n"), stderr
    assert elapsed >= LONG_EXEC_SECONDS - 5
