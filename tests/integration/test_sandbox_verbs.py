"""The container verbs of the host Sandbox, end to end against a real microVM.

Each test launches one sandbox with a busybox container and drives
:class:`~strongbox.sandbox.sandbox.Sandbox` directly (no CLI, no shim): exec,
list_processes, pause/resume, update, stats, status, add_container and
remove, with the answers checked the way a front door uses them. Wrong-status
verbs raise the status model's ContainerStateError, whether the host's check
or the agent's refused them.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from strongbox.config import load_config
from strongbox.errors import ConfigError, ContainerStartError, ContainerStateError
from strongbox.oci.spec import load_bundle
from strongbox.protocol import verbs
from strongbox.runtime.paths import DEFAULT_STATE_DIR
from strongbox.sandbox.plan import ContainerRequest
from strongbox.sandbox.pump import ProcessIO, Stream
from strongbox.sandbox.sandbox import Sandbox, SandboxRequestError
from tests.framework.bundle import make_bundle

pytestmark = pytest.mark.vm

T = TypeVar("T")
CID = "box"
PATH_ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
#: A long-running init, so execs have something to join.
SLEEPER = ["sleep", "1000"]


@pytest.fixture
def base(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path]) -> tuple[Path, Path]:
    return no_leaks, tmp_path


def run(coro: Awaitable[T], timeout: float = 120) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@asynccontextmanager
async def sandbox_with(base: tuple[Path, Path], args: list[str], *, overlay: bool = False,
                       start: bool = True, **changes: Any
                       ) -> AsyncIterator[tuple[Sandbox, ProcessIO, dict[str, Any], Path]]:
    """A booted sandbox holding container ``box`` (created, and started unless told not to)."""
    root, tmp = base
    changes.setdefault("root__readonly", False)
    bundle = make_bundle(tmp / "bundle", args, **changes)
    spec, rootfs = load_bundle(str(bundle))
    sandbox = Sandbox(load_config(), sandbox_id=f"verbs-{id(spec)}", root=root,
                      state_dir=DEFAULT_STATE_DIR)
    try:
        io = await sandbox.launch(ContainerRequest(id=CID, spec=spec, rootfs=rootfs,
                                                   overlay=overlay, stdin=False))
        if start:
            await sandbox.start_container(CID)
        yield sandbox, io, spec, bundle
    finally:
        try:
            await sandbox.stop()
        finally:
            await sandbox.destroy()


def proc(args: list[str], **fields: Any) -> dict[str, Any]:
    """An OCI process object for exec."""
    return {"args": args, "env": PATH_ENV, "cwd": "/", **fields}


async def read_all(stream: Stream | None) -> bytes:
    assert stream is not None
    chunks = []
    while data := await stream.read():
        chunks.append(data)
    return b"".join(chunks)


async def read_until(stream: Stream | None, marker: bytes, seen: bytearray) -> None:
    assert stream is not None
    while marker not in seen:
        data = await stream.read()
        assert data, f"EOF before {marker!r}; got {bytes(seen)!r}"
        seen += data


async def exec_output(sandbox: Sandbox, exec_id: str, args: list[str], **fields: Any
                      ) -> tuple[bytes, bytes, int]:
    io = await sandbox.exec_process(CID, exec_id, proc(args, **fields), stdin=False)
    out, err = await asyncio.gather(read_all(io.stdout), read_all(io.stderr))
    return out, err, (await sandbox.wait_process(CID, exec_id)).code


# --- exec ----------------------------------------------------------------------------------

def test_exec_output_exit_code_user_and_signal(base: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        async with sandbox_with(base, SLEEPER) as (sandbox, _, _, _):
            before = await sandbox.container_status(CID)
            out, err, code = await exec_output(
                sandbox, "e1", ["sh", "-c", "echo out; echo err >&2; exit 7"])
            assert (out, err, code) == (b"out\n", b"err\n", 7)
            out, _, code = await exec_output(sandbox, "e2", ["sh", "-c", "id -u; id -g"],
                                             user={"uid": 1000, "gid": 1000})
            assert (out.split(), code) == ([b"1000", b"1000"], 0)
            # A finished exec stays queryable; its id stays taken.
            assert (await sandbox.wait_process(CID, "e1")).code == 7
            with pytest.raises(SandboxRequestError) as taken:
                await sandbox.exec_process(CID, "e1", proc(["true"]), stdin=False)
            assert taken.value.code == "exists"
            # A signal reaches the exec only; the init keeps running.
            await sandbox.exec_process(CID, "e3", proc(["sleep", "100"]), stdin=False)
            await sandbox.signal_process(CID, signal.SIGTERM, exec_id="e3")
            status = await sandbox.wait_process(CID, "e3")
            assert (status.code, status.signal) == (128 + signal.SIGTERM, signal.SIGTERM)
            after = await sandbox.container_status(CID)
            assert after == before and after.status == "running" and after.exit_code is None

    run(scenario())


def test_exec_refused_unless_running(base: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        async with sandbox_with(base, ["true"], start=False) as (sandbox, _, _, _):
            assert (await sandbox.container_status(CID)).status == "created"
            with pytest.raises(ContainerStateError) as created:
                await sandbox.exec_process(CID, "x", proc(["true"]), stdin=False)
            assert (created.value.current, created.value.required) == ("created", ("running",))
            assert str(created.value) == f"cannot exec in container {CID}: it is created, " \
                                         "not running"
            # The agent refuses too (the host's check skipped), with the same error.
            with pytest.raises(ContainerStateError) as agent_says:
                await sandbox._call(verbs.PAUSE_CONTAINER, CID, {"id": CID}, operation="pause")
            assert (agent_says.value.current, agent_says.value.required) == \
                ("created", ("running",))
            await sandbox.start_container(CID)
            assert (await sandbox.wait_process(CID)).code == 0
            assert sandbox.status(CID) == "stopped"
            state = await sandbox.container_status(CID)
            assert (state.status, state.exit_code) == ("stopped", 0)
            with pytest.raises(ContainerStateError) as stopped:
                await sandbox.exec_process(CID, "x", proc(["true"]), stdin=False)
            assert stopped.value.current == "stopped" and "not running" in str(stopped.value)
            with pytest.raises(ContainerStateError, match=r"it is stopped, not running"):
                await sandbox.pause_container(CID)
            with pytest.raises(ContainerStateError, match=r"it is stopped, not paused"):
                await sandbox.resume_container(CID)
            with pytest.raises(SandboxRequestError) as missing:
                await sandbox.exec_process("nobody", "x", proc(["true"]), stdin=False)
            assert missing.value.code == "not_found"

    run(scenario())


def test_exec_of_missing_or_unrunnable_binary(base: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        async with sandbox_with(base, SLEEPER) as (sandbox, _, _, _):
            with pytest.raises(ContainerStartError) as missing:
                await sandbox.exec_process(CID, "m", proc(["no-such-binary"]), stdin=False)
            assert missing.value.exit_code == 127
            assert "no-such-binary" in str(missing.value)
            assert "\n" not in str(missing.value)
            assert (await sandbox.wait_process(CID, "m")).code == 127
            with pytest.raises(ContainerStartError) as unrunnable:
                await sandbox.exec_process(CID, "p", proc(["/etc/passwd"]), stdin=False)
            assert unrunnable.value.exit_code == 126
            assert (await sandbox.container_status(CID)).status == "running"

    run(scenario())


def test_exec_with_terminal_and_resize(base: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        async with sandbox_with(base, SLEEPER) as (sandbox, _, _, _):
            io = await sandbox.exec_process(
                CID, "tty", proc(["sh", "-c", "stty size; read line; stty size"],
                                 terminal=True, consoleSize={"height": 12, "width": 34}),
                stdin=True)
            assert io.terminal and io.stderr is None and io.stdin is not None
            seen = bytearray()
            await read_until(io.stdout, b"12 34", seen)
            await sandbox.resize_pty(CID, 40, 100, exec_id="tty")
            io.stdin.write(b"go\n")
            await read_until(io.stdout, b"40 100", seen)
            assert (await sandbox.wait_process(CID, "tty")).code == 0

    run(scenario())


def test_two_execs_in_flight_and_ps(base: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        async with sandbox_with(base, SLEEPER) as (sandbox, _, _, _):
            script = "echo started-{0}; read never; echo done-{0}"
            ios = await asyncio.gather(*(
                sandbox.exec_process(CID, name, proc(["sh", "-c", script.format(name)]),
                                     stdin=True) for name in ("a", "b")))
            for name, io in zip(("a", "b"), ios, strict=True):
                await read_until(io.stdout, f"started-{name}".encode(), bytearray())
            processes = await sandbox.list_processes(CID)
            init = (await sandbox.container_status(CID)).pid
            by_pid = {p.pid: p for p in processes}
            assert init is not None and by_pid[init].args == tuple(SLEEPER)
            assert by_pid[init].ns_pid == 1  # the container has its own pid namespace
            shells = [p for p in processes if p.args[:2] == ("sh", "-c")]
            assert sorted(p.args[2] for p in shells) == [script.format(n) for n in "ab"]
            assert all(p.comm == "sh" and p.uid == 0 and p.state in "SR" for p in shells)
            assert all(p.elapsed_s >= 0 and p.start_time_ticks > 0 for p in processes)
            assert len(processes) == 3
            # Both are in flight; finish b first, then a.
            for name in ("b", "a"):
                io = dict(zip(("a", "b"), ios, strict=True))[name]
                assert io.stdin is not None
                io.stdin.write(b"\n")
                io.stdin.close_write()
                assert f"done-{name}".encode() in await read_all(io.stdout)
                assert (await sandbox.wait_process(CID, name)).code == 0
            assert [p.pid for p in await sandbox.list_processes(CID)] == [init]

    run(scenario())


# --- pause, update, stats --------------------------------------------------------------------

def _counter(bundle: Path) -> int:
    """The container's counter, read on the host (the rootfs is shared read-write)."""
    for _ in range(50):
        text = (bundle / "rootfs" / "tmp" / "counter").read_text().strip()
        if text:  # the shell truncates before it writes
            return int(text)
        time.sleep(0.02)
    raise AssertionError("the counter file stays empty")


def test_pause_freezes_and_resume_thaws(base: tuple[Path, Path]) -> None:
    # Written to a temporary file and renamed: a pause between truncate and write
    # would otherwise leave the counter empty for the whole pause.
    counter = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/next; "
                           "mv /tmp/next /tmp/counter; usleep 20000; done"]

    async def scenario() -> None:
        async with sandbox_with(base, counter) as (sandbox, _, _, bundle):
            deadline = time.monotonic() + 30
            while not (bundle / "rootfs" / "tmp" / "counter").exists() or _counter(bundle) < 3:
                assert time.monotonic() < deadline, "the counter does not advance"
                await asyncio.sleep(0.05)
            await sandbox.pause_container(CID)
            assert (await sandbox.container_status(CID)).status == "paused"
            frozen_at = _counter(bundle)
            cpu_before = (await sandbox.stats_container(CID))["cpu"]["usage_usec"]
            await asyncio.sleep(0.5)
            assert _counter(bundle) == frozen_at
            stats = await sandbox.stats_container(CID)
            assert stats["status"] == "paused" and stats["cpu"]["usage_usec"] == cpu_before
            with pytest.raises(ContainerStateError) as again:
                await sandbox.pause_container(CID)
            assert again.value.current == "paused"
            with pytest.raises(ContainerStateError, match=r"it is paused, not running"):
                await sandbox.exec_process(CID, "x", proc(["true"]), stdin=False)
            await sandbox.resume_container(CID)
            assert (await sandbox.container_status(CID)).status == "running"
            while _counter(bundle) <= frozen_at:
                assert time.monotonic() < deadline, "the counter does not resume"
                await asyncio.sleep(0.05)
            # A paused container can be removed as it is: SIGKILL reaches frozen processes.
            waiter = asyncio.create_task(sandbox.wait_process(CID))
            await sandbox.pause_container(CID)
            await sandbox.remove_container(CID, force=True)
            assert (await waiter).code == 137

    run(scenario())


def test_update_lowers_pids_limit_and_stats_show_it(base: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        async with sandbox_with(base, SLEEPER) as (sandbox, _, _, _):
            stats = await sandbox.stats_container(CID)
            assert stats["status"] == "running"
            assert stats["memory"]["current"] > 0 and "oom_kill" in stats["memory"]
            assert stats["memory"]["stat"]["anon"] >= 0
            assert stats["pids"]["current"] == 1 and stats["pids"]["max"] is None
            assert stats["cpu"]["usage_usec"] > 0
            assert stats["procs"] == [(await sandbox.container_status(CID)).pid]

            merged = await sandbox.update_container(CID, {
                "pids": {"limit": 3}, "memory": {"limit": 64 * 1024 * 1024}})
            assert merged["pids"] == {"limit": 3}
            assert merged["devices"] == [{"allow": False, "access": "rwm"}]  # kept from spec
            stats = await sandbox.stats_container(CID)
            assert stats["pids"]["max"] == 3 and stats["memory"]["max"] == 64 * 1024 * 1024
            # sleep (init) + sh + one child reach the limit: the second fork fails.
            script = "sleep 30 >/dev/null & sleep 30 >/dev/null & echo forked"
            _, err, _ = await exec_output(sandbox, "forks", ["sh", "-c", script])
            assert b"can't fork" in err, err
            with pytest.raises(ConfigError, match=r"linux\.resources\.pids: expected an object"):
                await sandbox.update_container(CID, {"pids": "lots"})

    run(scenario())


# --- remove --------------------------------------------------------------------------------

def test_remove_kills_everything_and_the_id_is_reusable(base: tuple[Path, Path]) -> None:
    async def scenario() -> None:
        async with sandbox_with(base, SLEEPER, overlay=True) as (sandbox, _, spec, bundle):
            assert (await exec_output(sandbox, "w", ["touch", "/written"]))[2] == 0
            await sandbox.exec_process(CID, "e", proc(["sleep", "500"]), stdin=False)
            waits = [asyncio.create_task(sandbox.wait_process(CID, x)) for x in ("", "e")]
            await asyncio.sleep(0.2)
            with pytest.raises(ContainerStateError, match="it is running, not creating or "
                                                          "created or stopped"):
                await sandbox.remove_container(CID)  # a running one only when forced
            await sandbox.remove_container(CID, force=True)
            assert [(await w).code for w in waits] == [137, 137]
            with pytest.raises(SandboxRequestError) as gone:
                await sandbox.container_status(CID)
            assert gone.value.code == "not_found"

            spec["process"]["args"] = ["sh", "-c", "ls /written 2>&1; echo again"]
            io = await sandbox.add_container(ContainerRequest(
                id=CID, spec=spec, rootfs=str(bundle / "rootfs"), overlay=True, stdin=False))
            await sandbox.start_container(CID)
            out = await read_all(io.stdout)
            assert out.endswith(b"again\n") and b"No such file" in out  # a fresh overlay
            assert (await sandbox.wait_process(CID)).code == 0
            await sandbox.remove_container(CID)

    run(scenario())


def _export_mounts(qemu_pid: int, export: Path) -> dict[str, set[str]]:
    """Mount point -> options of every mount at or below ``export``, as QEMU sees them."""
    found = {}
    for line in Path(f"/proc/{qemu_pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4].startswith(f"{export}/"):
            found[fields[4]] = set(fields[5].split(","))
    return found


def test_shares_are_nodev_nosuid_whenever_they_are_attached(base: tuple[Path, Path]) -> None:
    """QEMU never needs a container's device nodes or set-id bits: all shares lack them,
    at boot and when a second container's rootfs (containerd's mount list) and bind
    sources are added to the running VM; removing it unexports them."""
    tmp = base[1]
    late_rw, late_ro = tmp / "late-rw", tmp / "late-ro"
    for path in (late_rw, late_ro):
        path.mkdir()

    async def check() -> None:
        async with sandbox_with(base, SLEEPER) as (sandbox, _, spec, bundle):
            export = sandbox.export
            first = len(spec["mounts"])
            second = dict(spec, mounts=[
                *spec["mounts"],
                {"destination": "/mnt/rw", "type": "bind", "source": str(late_rw),
                 "options": ["rbind", "rw"]},
                {"destination": "/mnt/ro", "type": "bind", "source": str(late_ro),
                 "options": ["rbind", "ro"]}])
            rw = f"{export}/second/mounts/{first}/late-rw"
            ro = f"{export}/second/mounts/{first + 1}/late-ro"
            await sandbox.add_container(ContainerRequest(
                id="second", spec=second, rootfs=str(bundle / "rootfs"), stdin=False,
                rootfs_mounts=({"type": "bind", "source": str(bundle / "rootfs"),
                                "options": ["rbind", "rw"]},)))
            mounts = _export_mounts(sandbox.vmm_pid, export)
            assert {f"{export}/{CID}/rootfs", rw, ro, f"{export}/second/rootfs"} <= set(mounts), \
                mounts
            for point, options in mounts.items():
                assert {"nodev", "nosuid"} <= options, (point, options)
            assert "ro" in mounts[ro] and "rw" in mounts[rw]
            await sandbox.remove_container("second")
            left = _export_mounts(sandbox.vmm_pid, export)
            assert not [m for m in left if m.startswith(f"{export}/second/")], left
            assert not (export / "second").exists()

    run(check())
