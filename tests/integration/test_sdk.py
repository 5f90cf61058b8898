"""The Python SDK (``strongbox.Sandbox``) on real VMs: from an OCI archive to close.

Each sandbox is created from an OCI image archive the fixtures build (busybox), runs in
a microVM of its own and is driven the way a user of a code-execution service would:
commands with streamed output and timeouts, files both ways, pause and resume, a second
process connecting by id, the asyncio flavour, and a close that leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import strongbox
import strongbox.aio
from strongbox.errors import ConfigError, ContainerStartError, SandboxFileError, SandboxTimeout
from tests.framework.bundle import make_rootfs
from tests.framework.images import oci_archive
from tests.framework.procs import qemu_pids, wait_until

pytestmark = pytest.mark.usefixtures("guest_assets")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("sdk-image")
    return oci_archive(make_rootfs(base / "rootfs"), base / "busybox.oci.tar")


@pytest.fixture
def sandbox(image: Path, root: Path) -> Iterator[strongbox.Sandbox]:
    sb = strongbox.Sandbox.create(image, root=root)
    try:
        yield sb
    finally:
        sb.close()


def _nothing_left(root: Path, sandbox_id: str) -> None:
    assert wait_until(lambda: not qemu_pids(str(root)), timeout=10), "QEMU survived close"
    vms = root / "vms"
    assert not (vms.exists() and any(vms.iterdir())), list(vms.iterdir())
    assert not (root / "containers" / sandbox_id).exists(), "the state record survived"
    assert not (root / "sdk" / sandbox_id).exists(), "the bundle survived"
    assert not [p for p in root.rglob("*") if p.is_socket()], "a socket survived"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(root) not in mounts, "a mount under the root survived"
    assert sandbox_id not in [s.id for s in strongbox.Sandbox.list(root=root)]


def test_run_streams_output_and_reports_the_exit(sandbox: strongbox.Sandbox) -> None:
    chunks: list[tuple[float, bytes]] = []
    started = time.monotonic()
    result = sandbox.run("for i in 1 2 3; do echo line$i; sleep 0.4; done; echo oops >&2; "
                         "exit 3", on_stdout=lambda b: chunks.append((time.monotonic(), b)))
    ended = time.monotonic()
    assert result.exit_code == 3
    assert result.stdout == b"line1\nline2\nline3\n"
    assert result.stderr == b"oops\n"
    assert chunks and b"".join(c for _, c in chunks) == result.stdout
    assert chunks[0][0] < ended - 0.6, "the first line came only at the end: not streamed"
    assert chunks[0][0] > started
    argv = sandbox.run(["sh", "-c", "echo $GREETING from $(pwd)"], env={"GREETING": "hi"},
                       cwd="/tmp")
    assert argv.text == "hi from /tmp\n"
    fed = sandbox.run("wc -c", stdin=b"x" * 100_000)
    assert fed.text.strip() == "100000"
    with pytest.raises(ContainerStartError) as missing:
        sandbox.run(["/no/such/program"])
    assert missing.value.exit_code == 127


def test_a_timeout_kills_the_process_and_says_so(sandbox: strongbox.Sandbox) -> None:
    started = time.monotonic()
    with pytest.raises(SandboxTimeout) as raised:
        sandbox.run("echo before; sleep 10", timeout_s=2)
    took = time.monotonic() - started
    assert took < 8, f"the timeout took {took:.1f}s"
    assert "2s" in str(raised.value) and "killed" in str(raised.value)
    assert raised.value.stdout == b"before\n"
    survivors = sandbox.run("ps -o args | grep -c '^sleep 10' || true").text.strip()
    assert survivors == "0", "the timed-out process still runs"


def test_files_round_trip_twenty_mebibytes(sandbox: strongbox.Sandbox, tmp_path: Path) -> None:
    data = os.urandom(20 << 20)
    sandbox.files.write("/data/blob.bin", data)
    assert sandbox.files.read("/data/blob.bin") == data
    digest = sandbox.run("sha256sum /data/blob.bin").text.split()[0]
    assert digest == hashlib.sha256(data).hexdigest(), "the guest saw other bytes"
    local = tmp_path / "up.bin"
    local.write_bytes(data[: 3 << 20])
    sandbox.files.upload(local, "/data/up.bin", mode=0o600)
    sandbox.files.download("/data/up.bin", tmp_path / "down.bin")
    assert (tmp_path / "down.bin").read_bytes() == local.read_bytes()
    entries = {e.name: e for e in sandbox.files.list("/data")}
    assert entries["blob.bin"].size == 20 << 20 and entries["blob.bin"].type == "file"
    assert entries["up.bin"].mode == 0o600
    sandbox.files.write("/data/note.txt", "text too")
    assert sandbox.files.read_text("/data/note.txt") == "text too"
    sandbox.files.remove("/data")
    assert not sandbox.files.exists("/data/blob.bin")
    with pytest.raises(SandboxFileError) as missing:
        sandbox.files.read("/data/blob.bin")
    assert missing.value.errno == errno.ENOENT
    with pytest.raises(SandboxFileError) as a_dir:
        sandbox.files.read("/etc")
    assert a_dir.value.errno == errno.EISDIR


def test_a_symlink_planted_inside_cannot_reach_the_guest_root(
        sandbox: strongbox.Sandbox) -> None:
    """A path resolves in the container's root: ``/`` behind a symlink is still its own."""
    sandbox.run("ln -s / /tmp/escape && ln -s /../../.. /tmp/up")
    assert sandbox.files.read("/tmp/escape/etc/passwd") == sandbox.files.read("/etc/passwd")
    names = {e.name for e in sandbox.files.list("/tmp/up/")}
    assert names == {e.name for e in sandbox.files.list("/")}
    assert "init" not in names, "the guest's own root (the agent's /init) was reached"


def test_pause_stops_a_counter_and_resume_continues_it(sandbox: strongbox.Sandbox) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def on_line(data: bytes) -> None:
        with lock:
            seen.extend(int(n) for n in data.split())

    counter = sandbox.spawn("i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done",
                            on_stdout=on_line)
    assert wait_until(lambda: len(seen) >= 5, timeout=20)
    sandbox.pause()
    time.sleep(0.5)  # what was on its way is in
    with lock:
        frozen = list(seen)
    time.sleep(1.5)
    assert seen == frozen, "the counter ran on while paused"
    sandbox.resume()
    assert wait_until(lambda: len(seen) >= len(frozen) + 5, timeout=20)
    assert seen[len(frozen)] == frozen[-1] + 1, "resume did not continue the same count"
    assert seen == list(range(1, len(seen) + 1))
    counter.kill()
    assert counter.wait(timeout_s=20).signal == 9


def test_connect_from_another_process(sandbox: strongbox.Sandbox, root: Path) -> None:
    sandbox.files.write("/tmp/marker", b"made by the first process\n")
    script = textwrap.dedent(f"""
        import strongbox
        ids = [s.id for s in strongbox.Sandbox.list(root={str(root)!r})]
        assert {sandbox.id!r} in ids, ids
        sb = strongbox.Sandbox.connect({sandbox.id!r}, root={str(root)!r})
        print(sb.run("cat /tmp/marker; hostname").text, end="")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert out == f"made by the first process\n{sandbox.id}\n"


def test_close_leaves_nothing_behind(image: Path, root: Path) -> None:
    sb = strongbox.Sandbox.create(image, root=root)
    assert qemu_pids(str(root)), "no VM was running"
    sb.spawn("sleep 1000")  # a process still running at close
    sb.close()
    _nothing_left(root, sb.id)
    sb.close()  # twice is fine
    with pytest.raises(strongbox.errors.SandboxNotFound):
        strongbox.Sandbox.connect(sb.id, root=root)


def test_the_asyncio_sandbox(image: Path, root: Path) -> None:
    async def main() -> tuple[str, bytes, str]:
        async with await strongbox.aio.Sandbox.create(image, root=root, memory_mib=256,
                                                      timeout_s=600) as sb:
            await sb.files.write("/tmp/a.txt", b"async")
            result = await sb.run("cat /tmp/a.txt; echo; nproc; ls /sys/class/net")
            background = await sb.spawn("sleep 30")
            background.kill()
            await background.wait(20)
            return result.text, await sb.files.read("/tmp/a.txt"), sb.id

    text, data, sandbox_id = asyncio.run(main())
    assert text.splitlines() == ["async", "1", "lo"], "network=none is lo only"
    assert data == b"async"
    _nothing_left(root, sandbox_id)


def test_timeout_s_ends_the_sandbox(image: Path, root: Path) -> None:
    sb = strongbox.Sandbox.create(image, root=root, timeout_s=3)
    try:
        assert sb.run("echo alive").text == "alive\n"
        assert wait_until(lambda: sb.status == "stopped", timeout=30), sb.status
        assert wait_until(lambda: not qemu_pids(str(root)), timeout=10), "its VM lives on"
        with pytest.raises(strongbox.errors.SandboxNotFound):
            strongbox.Sandbox.connect(sb.id, root=root)
    finally:
        sb.close()
    _nothing_left(root, sb.id)


@pytest.mark.parametrize(("options", "named"), [
    ({"memory_mib": -1}, "memory_mib"),
    ({"vcpus": "two"}, "vcpus"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"env": {"1BAD": "x"}}, "env"),
    ({"network": "some"}, "netns"),
    ({"network": ["10.0.0.0/33"], "netns": "/run/netns/x"}, "network"),
    ({"netns": "/run/netns/x"}, "netns"),
])
def test_bad_options_are_one_error_and_leave_nothing(image: Path, root: Path,
                                                     options: dict[str, object],
                                                     named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        strongbox.Sandbox.create(image, root=root, **options)  # type: ignore[arg-type]
    assert named in str(raised.value)
    assert not (root / "sdk").exists() or not any((root / "sdk").iterdir())
    assert not qemu_pids(str(root))


def test_a_missing_image_is_one_error(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        strongbox.Sandbox.create(tmp_path / "nope.tar", root=root)
    with pytest.raises(strongbox.errors.StrongboxError, match=r"not.*image|index"):
        (tmp_path / "junk.tar").write_bytes(b"not a tar")
        strongbox.Sandbox.create(tmp_path / "junk.tar", root=root)
