"""Podman (Debian's) drives strongbox as its OCI runtime, unchanged."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework.podman import IMAGE, Podman
from tests.framework.procs import qemu_pids, wait_until

pytestmark = [
    pytest.mark.vm,
    pytest.mark.usefixtures("factory_mode"),
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory, factory_mode: str,
           guest_assets: dict[str, Path]) -> Iterator[Podman]:
    pm = Podman(tmp_path_factory.mktemp("podman"))
    pm.load_busybox()
    yield pm
    pm("rm", "--all", "--force", timeout=300)
    assert wait_until(lambda: not qemu_pids(str(pm.root)), 10)
    assert not list((pm.root / "containers").glob("*")) if (pm.root / "containers").exists() \
        else True


@pytest.mark.pool
@pytest.mark.q35
def test_run_foreground(podman: Podman) -> None:
    result = podman("run", "--rm", "--network=none", IMAGE, "sh", "-c",
                    "echo hello from podman; uname -r")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "hello from podman"
    assert lines[1].startswith("6.1.")  # the guest's kernel, not the host's


def test_exit_code_passes_through(podman: Podman) -> None:
    assert podman("run", "--rm", "--network=none", IMAGE, "sh", "-c", "exit 3").returncode == 3


def test_run_rm_leaves_nothing(podman: Podman) -> None:
    podman("run", "--rm", "--name", "gone", "--network=none", IMAGE, "true", check=True)
    assert "gone" not in podman("ps", "-a", "--format", "{{.Names}}", check=True).stdout
    assert wait_until(lambda: not qemu_pids(str(podman.root)), 10)


@pytest.mark.pool
@pytest.mark.q35
def test_detached_logs_exec_stop_rm(podman: Podman) -> None:
    podman("run", "-d", "--name", "bg", "--network=none", IMAGE, "sh", "-c",
           'trap "echo stopping; exit 0" TERM; i=0; '
           "while true; do echo tick $i; i=$((i+1)); sleep 0.5; done", check=True)
    try:
        assert wait_until(lambda: "tick 1" in podman("logs", "bg").stdout, 60)
        out = podman("exec", "bg", "sh", "-c", "echo in-exec; hostname; exit 4")
        assert out.returncode == 4
        assert out.stdout.splitlines()[0] == "in-exec"
        top = podman("exec", "bg", "ps", check=True).stdout
        assert "sh -c" in top
        started = time.monotonic()
        podman("stop", "-t", "20", "bg", check=True)
        assert time.monotonic() - started < 20  # the trap ran: no SIGKILL needed
        assert "stopping" in podman("logs", "bg").stdout
        inspect = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "bg",
                         check=True)
        assert inspect.stdout.split() == ["exited", "0"]
    finally:
        podman("rm", "--force", "bg")


def test_stop_escalates_to_kill_within_its_timeout(podman: Podman) -> None:
    podman("run", "-d", "--name", "stubborn", "--network=none", IMAGE, "sleep", "600",
           check=True)
    try:
        started = time.monotonic()
        podman("stop", "-t", "2", "stubborn", check=True)
        assert time.monotonic() - started < 30
        code = podman("inspect", "--format", "{{.State.ExitCode}}", "stubborn").stdout.strip()
        assert code == "137"
    finally:
        podman("rm", "--force", "stubborn")


def test_kill_with_signal(podman: Podman) -> None:
    podman("run", "-d", "--name", "killme", "--network=none", IMAGE, "sh", "-c",
           'trap "echo got-usr1; exit 10" USR1; while true; do sleep 0.2; done', check=True)
    try:
        time.sleep(1)
        podman("kill", "-s", "USR1", "killme", check=True)
        assert podman("wait", "killme", timeout=60).stdout.strip() == "10"
        assert "got-usr1" in podman("logs", "killme").stdout
    finally:
        podman("rm", "--force", "killme")


def test_volume(podman: Podman, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("from the host\n")
    result = podman("run", "--rm", "--network=none", "-v", f"{data}:/data", IMAGE, "sh", "-c",
                    "cat /data/in.txt; echo from the container > /data/out.txt")
    assert result.stdout == "from the host\n", result.stderr
    assert (data / "out.txt").read_text() == "from the container\n"


def test_run_interactive_terminal(podman: Podman) -> None:
    pexpect = pytest.importorskip("pexpect")
    argv = podman.argv("run", "-it", "--rm", "--network=none", "--env", "PS1=pm# ", IMAGE, "sh")
    child = pexpect.spawn(argv[0], argv[1:], timeout=120, env=podman.env)
    try:
        child.expect("pm# ")
        child.sendline("echo $((7*6)); tty")
        child.expect("42")
        child.expect("pm# ")
        child.sendline("exit 5")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 5


def test_exec_interactive(podman: Podman) -> None:
    pexpect = pytest.importorskip("pexpect")
    podman("run", "-d", "--name", "exi", "--network=none", IMAGE, "sleep", "600", check=True)
    try:
        argv = podman.argv("exec", "-it", "exi", "sh")
        child = pexpect.spawn(argv[0], argv[1:], timeout=120, env=podman.env,
                              dimensions=(31, 97))
        try:  # the terminal's size holds from the first command, before any resize
            child.sendline("stty size; echo exec-$((3*3)); exit 2")
            child.expect(r"31 97\s+exec-9")
            child.expect(pexpect.EOF)
        finally:
            child.close()
        assert child.exitstatus == 2
    finally:
        podman("rm", "--force", "-t", "0", "exi")


def test_default_network(podman: Podman) -> None:
    """podman's network namespace holds QEMU; its veth becomes the guest's eth0 (the
    addresses and reachability are test_network_podman.py's)."""
    result = podman("run", "--rm", IMAGE, "sh", "-c", "cat /proc/net/dev | tail -n +3 | "
                    "cut -d: -f1")
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == ["eth0", "lo"]


def test_loopback_is_up_and_answers(podman: Podman) -> None:
    """podman gives a network namespace path (the guest cannot join it): the container
    lives in the VM's own namespace, whose lo is up, so localhost works."""
    script = ("cat /sys/class/net/lo/flags; (nc -l -p 7777 > /tmp/got &); sleep 0.5; "
              "echo over-localhost | nc -w 2 127.0.0.1 7777; sleep 0.3; cat /tmp/got")
    result = podman("run", "--rm", IMAGE, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0x9", "over-localhost"]  # IFF_UP | IFF_LOOPBACK


def test_rlimits_come_out_exactly_as_with_runc(podman: Podman) -> None:
    script = "ulimit -Sn; ulimit -Hn; ulimit -Su; ulimit -Hu"
    argv = ["run", "--rm", "--network=none", "--ulimit", "nofile=3000:4000", "--ulimit",
            "nproc=500:600", IMAGE, "sh", "-c", script]
    ours = podman(*argv)
    assert ours.returncode == 0, ours.stderr
    runc = shutil.which("runc")
    if runc is not None:
        theirs = subprocess.run(podman.argv(*argv, runtime=runc), capture_output=True,
                                text=True, env=podman.env, timeout=120)
        assert theirs.returncode == 0, theirs.stderr
        assert ours.stdout.split() == theirs.stdout.split()
    assert ours.stdout.split() == ["3000", "4000", "500", "600"]


def test_rlimit_that_cannot_be_set_is_named(podman: Podman) -> None:
    result = podman("run", "--rm", "--network=none", "--ulimit", "nofile=2000000:2000000",
                    IMAGE, "true")
    assert result.returncode != 0
    assert "RLIMIT_NOFILE" in result.stderr



def test_top_shows_the_containers_processes(podman: Podman) -> None:
    """``podman top`` never lists the host's processes.

    With ps(1) options podman runs ps in the container (its fallback for what its own
    psgo does not know): the guest's processes. With psgo's descriptors (the default)
    podman does not ask the runtime: it enters the *mount namespace* of the pid ``state``
    reports and lists the /proc it finds there. That pid is the monitor, which lives in
    pid and mount namespaces of its own with their own /proc (runtime/ownerns.py), so
    podman lists the monitor and QEMU: what stands for the container on the host."""
    podman("run", "-d", "--name", "topped", "--network=none", IMAGE, "sleep", "1000",
           check=True)
    try:
        rows = podman("top", "topped", "-ef", check=True).stdout.splitlines()
        assert rows[0].split() == ["PID", "USER", "COMMAND"]
        commands = {" ".join(row.split()[2:]): int(row.split()[0]) for row in rows[1:]}
        assert commands.get("sleep 1000") == 1  # pid 1 of the container, as with runc
        assert set(commands) <= {"sleep 1000", "ps -ef"}, commands
        default = podman("top", "topped", check=True).stdout.splitlines()
        command_at = default[0].split().index("COMMAND")
        listed = [" ".join(row.split()[command_at:]) for row in default[1:]]
        assert any("qemu-system" in c for c in listed), listed
        assert all("qemu-system" in c or "strongbox" in c for c in listed), listed
    finally:
        podman("rm", "--force", "topped")
