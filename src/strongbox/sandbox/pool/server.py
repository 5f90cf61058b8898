"""Server is the warm pool's process: it keeps ``vm_cache_number`` warmed VMs free.

``strongbox factory serve`` runs it in the foreground (as a service would);
one pool per pool directory (a lock). It spawns one keeper per VM
(:mod:`.keeper`) and holds the free VMs' claim sockets; a claim on
``pool.sock`` for a key it has (:func:`.take.pool_key`) gets one passed with
``SCM_RIGHTS`` and the pool's copy closed at once, so a VM is handed out
exactly once and never comes back: whoever holds it ends it. Refilling is
one keeper at a time (a boot takes a CPU under TCG), and a keeper that
fails backs the refill off. A free VM whose QEMU ends, or whose keeper
dies, is dropped and replaced. When the pool ends, however it ends, every
free VM's keeper reads EOF and removes its VM; handed-out VMs are their
owners' and live on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import signal
import socket
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.errors import SandboxError
from strongbox.hypervisor import open_vmm
from strongbox.sandbox.pool import wire
from strongbox.sandbox.pool.keeper import warm_bundle
from strongbox.sandbox.pool.take import pool_key

log = logging.getLogger("strongbox.pool")
#: Seconds a keeper may take to boot and warm its VM.
READY_TIMEOUT = 180.0
#: Seconds the refill waits after a keeper failed.
BACKOFF = 5.0


@dataclass
class Free:
    """A warmed VM waiting for an owner: its keeper and the pool's end of its claim socket."""

    name: str
    claim: socket.socket
    keeper: asyncio.subprocess.Process
    watcher: asyncio.Task[None] | None = None
    ready_at: float = field(default_factory=time.monotonic)


class Pool:
    """The pool process's state (see the module docstring)."""

    def __init__(self, config: Config, *, state_dir: Path, root: Path, size: int,
                 config_path: str | None = None, debug: bool = False) -> None:
        self.config, self.state_dir, self.root, self.size = config, state_dir, root, size
        self.config_path, self.debug = config_path, debug
        self.dir = wire.pool_dir(config)
        vmm = open_vmm(config, state_dir)
        shape = vmm.shape()
        self.key = pool_key(config, vmm, shape.default_memory_mib, shape.default_vcpus)
        self.shape = (shape.default_memory_mib, shape.default_vcpus)
        self.free: dict[str, Free] = {}
        self.warming = 0
        self.handed: dict[str, asyncio.subprocess.Process] = {}
        self.made: deque[float] = deque(maxlen=20)  # seconds each of the last VMs took
        self.made_at: deque[float] = deque(maxlen=100)
        self.claims = self.misses = self.failures = 0
        self.started = time.monotonic()
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- running ---------------------------------------------------------------------------
    async def serve(self, on_ready: Any = None) -> None:
        """Serve until SIGTERM/SIGINT; every free VM is removed on the way out."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = os.open(self.dir / "pool.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            raise SandboxError(f"a pool is running already in {self.dir}") from None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        self.bundle = warm_bundle(self.dir)
        path = wire.socket_path(self.config)
        path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            server.bind(str(path))
            os.chmod(path, 0o600)
            server.listen(64)
            server.setblocking(False)
            self._spawn(self._accept(server))
            self._spawn(self._refill())
            if on_ready is not None:
                on_ready(path)
            await self._stop.wait()
        finally:
            path.unlink(missing_ok=True)
            server.close()
            for task in list(self._tasks):
                task.cancel()
            for free in list(self.free.values()):
                self._drop(free)
            await asyncio.sleep(0.05)  # watchers stop, then their sockets close
            os.close(lock)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, server: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(server)
            self._spawn(self._answer(conn))

    async def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                message, fds = await asyncio.wait_for(wire.receive(conn), 5.0)
            except (TimeoutError, ValueError, SandboxError):
                return
            for fd in fds:
                os.close(fd)
            if message is None:
                return
            with contextlib.suppress(OSError):
                if "claim" in message:
                    await self._claim(conn, message["claim"])
                elif "status" in message:
                    wire.send(conn, {"status": self.status()})
                else:
                    wire.send(conn, {"error": f"unknown request {next(iter(message), '')!r}"})

    async def _claim(self, conn: socket.socket, args: Any) -> None:
        key = args.get("key") if isinstance(args, dict) else None
        owner = args.get("owner", "?") if isinstance(args, dict) else "?"
        self.claims += 1
        if key != self.key:
            self.misses += 1
            wire.send(conn, {"none": "the pool's VMs are of another shape or configuration"})
            return
        if not self.free:
            self.misses += 1
            wire.send(conn, {"none": f"no free VM ({self.warming} warming)"})
            return
        free = self.free.pop(next(iter(self.free)))  # the oldest: longest warm
        await wire.cancel(free.watcher)  # this VM's messages are its owner's from now on
        try:
            wire.send(conn, {"vm": free.name}, [free.claim.fileno()])
        except OSError:
            self._drop(free)  # the claimer went: the VM is not handed out twice either
            raise
        finally:
            self._changed.set()
        free.claim.close()  # the owner's now: its EOF is the keeper's end
        self.handed[free.name] = free.keeper
        self._spawn(self._reap(free.name, free.keeper))
        log.debug("pool: VM %s to %s", free.name, owner)

    async def _reap(self, name: str, keeper: asyncio.subprocess.Process) -> None:
        await keeper.wait()
        self.handed.pop(name, None)

    def _drop(self, free: Free) -> None:
        """A free VM goes: its keeper reads EOF and removes it (its watcher stops first)."""
        self.free.pop(free.name, None)
        watcher = free.watcher
        if watcher is not None and not watcher.done() and watcher is not asyncio.current_task():
            watcher.add_done_callback(lambda _: free.claim.close())
            watcher.cancel()
        else:
            free.claim.close()
        self._changed.set()

    async def _watch(self, free: Free) -> None:
        """A free VM's QEMU ended or its keeper died: drop it (the refill replaces it)."""
        message, fds = await wire.receive(free.claim)
        for fd in fds:
            os.close(fd)
        log.warning("pool: free VM %s %s; replacing it", free.name,
                    f"exited ({message})" if message else "lost its keeper")
        self._drop(free)

    # --- refilling -------------------------------------------------------------------------
    async def _refill(self) -> None:
        while True:
            while len(self.free) + self.warming >= self.size:
                self._changed.clear()
                await self._changed.wait()
            if not await self._make_one():
                await asyncio.sleep(BACKOFF)

    async def _make_one(self) -> bool:
        name = f"pool-{secrets.token_hex(6)}"
        ours, theirs = wire.pair()
        argv = [sys.executable, "-m", "strongbox.sandbox.pool.keeper", "--name", name,
                "--state-dir", str(self.state_dir), "--root", str(self.root),
                "--fd", str(theirs.fileno()), "--bundle", str(self.bundle)]
        if self.config_path:
            argv += ["--config", self.config_path]
        if self.debug:
            argv.append("--debug")
        started = time.monotonic()
        self.warming += 1
        try:
            keeper = await asyncio.create_subprocess_exec(
                *argv, pass_fds=(theirs.fileno(),), start_new_session=True,
                stdin=asyncio.subprocess.DEVNULL)
            theirs.close()
            try:
                message, fds = await asyncio.wait_for(wire.receive(ours), READY_TIMEOUT)
            except TimeoutError:
                message, fds = None, []
            for fd in fds:
                os.close(fd)
        except BaseException:
            ours.close()  # a keeper still warming reads EOF and removes its VM
            raise
        finally:
            self.warming -= 1
            theirs.close()
        if message is None or "ready" not in message:
            ours.close()
            self.failures += 1
            log.warning("pool: VM %s failed to warm: %s", name,
                        (message or {}).get("failed", "its keeper ended"))
            return False
        took = time.monotonic() - started
        self.made.append(took)
        self.made_at.append(time.monotonic())
        free = self.free[name] = Free(name, ours, keeper)
        free.watcher = asyncio.create_task(self._watch(free))
        log.debug("pool: VM %s warm in %.2fs (%d free)", name, took, len(self.free))
        return True

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        recent = [t for t in self.made_at if now - t <= 60.0]
        return {"pid": os.getpid(), "size": self.size, "free": len(self.free),
                "free_vms": list(self.free), "in_use_vms": sorted(self.handed),
                "warming": self.warming, "in_use": len(self.handed),
                "memory_mib": self.shape[0], "vcpus": self.shape[1],
                "claims": self.claims, "misses": self.misses, "failures": self.failures,
                "made": len(self.made_at),
                "refill_s": round(statistics.median(self.made), 3) if self.made else None,
                "made_last_minute": len(recent), "uptime_s": round(now - self.started, 1)}


async def query_status(config: Config, timeout: float = 3.0) -> dict[str, Any] | None:
    """The running pool's status, or None when no pool answers."""
    path = wire.socket_path(config)
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, str(path))
        answer, _ = await wire.request(sock, {"status": {}}, timeout=timeout)
    except (OSError, SandboxError):
        return None
    finally:
        sock.close()
    status = answer.get("status")
    return status if isinstance(status, dict) else None
