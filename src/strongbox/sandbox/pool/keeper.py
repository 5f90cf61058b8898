"""Keeper owns one pooled VM from its boot to its end, whoever holds it in between.

The pool (:mod:`.server`) spawns one keeper per pooled VM, in a session of
its own, so the pool's death does not take it down. The keeper boots a
template clone through the normal launch path, warms it by running a
throw-away busybox container (TCG keeps its translations per QEMU process,
so the next container's set-up runs hot), and tells the pool it is ready.
QEMU is the keeper's child and dies with it (``PR_SET_PDEATHSIG``).

Ownership is the *claim socket*: the pool holds its other end while the VM
is free and passes it to the VM's owner (a CLI monitor or a shim) with
``SCM_RIGHTS``. When the keeper reads EOF on it, however the holder ended
(a clean release, kill -9, the pool dying with the VM still free), it kills
QEMU, removes the VM's taps, namespace and run directory, and only then
closes its side: an owner's release waits for that, so a finished delete
has left nothing behind. On the socket the owner asks (:mod:`.take`):

* ``adopt``: the agent channel, a pidfd of QEMU and its network namespace;
* ``move_taps``: the NIC slots' taps into the engine's namespace (QEMU's
  fds keep working; the kernel brings a moved link down, so it is set up);
* ``settle_cgroup``: QEMU's threads into the owner's host cgroup (a pid
  written to ``cgroup.procs`` is read in the writer's pid namespace, and a
  CLI monitor's is not the host's).

The keeper says ``exit`` with QEMU's status when QEMU ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from strongbox.atomicfile import atomic_write
from strongbox.config import Config, load_config
from strongbox.errors import SandboxError
from strongbox.oci.defaults import default_spec
from strongbox.oci.spec import load_bundle
from strongbox.sandbox import hostcgroup
from strongbox.sandbox.boot import Booted
from strongbox.sandbox.plan import ContainerRequest
from strongbox.sandbox.pool import wire
from strongbox.sandbox.pump import Stream
from strongbox.sandbox.sandbox import Sandbox

log = logging.getLogger("strongbox.pool")
WARM_ID = "pool-warm-up"
BUSYBOX = "/bin/busybox"


def warm_bundle(directory: Path) -> Path:
    """The throw-away container's bundle (busybox ``true``), built once per pool directory."""
    bundle = directory / "warm-bundle"
    if (bundle / "config.json").is_file():
        return bundle
    if not os.path.isfile(BUSYBOX):
        raise SandboxError(f"the pool's warm-up container needs {BUSYBOX} (busybox-static)")
    building = directory / f".warm-bundle-{secrets.token_hex(4)}"
    rootfs = building / "rootfs"
    for name in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        (rootfs / name).mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["/bin/busybox", "true"]
    atomic_write(building / "config.json", json.dumps(spec).encode())
    try:
        os.rename(building, bundle)
    except OSError:  # another keeper made it first
        shutil.rmtree(building, ignore_errors=True)
    return bundle


async def warm(sandbox: Sandbox, bundle: Path) -> Booted:
    """Boot the VM and run the throw-away container in it to its end; the VM, still up."""
    spec, rootfs = load_bundle(str(bundle))
    io = await sandbox.launch(ContainerRequest(id=WARM_ID, spec=spec, rootfs=rootfs,
                                               stdin=False, bundle=str(bundle)), pool=False)
    drains = [asyncio.create_task(_drain(s)) for s in (io.stdout, io.stderr) if s is not None]
    await sandbox.start_container(WARM_ID)
    status = await sandbox.wait_process(WARM_ID)
    await asyncio.gather(*drains)
    if status.code != 0:
        raise SandboxError(f"the warm-up container exited {status.code}")
    await sandbox.remove_container(WARM_ID)
    booted, sandbox.booted = sandbox.booted, None
    assert booted is not None
    left = sorted(p.name for p in booted.export.iterdir())
    if left:
        raise SandboxError(f"the warm-up container left {left} in the export")
    return booted


async def _drain(stream: Stream) -> None:
    while await stream.read():
        pass


def move_taps(netns: str, taps: list[str], target_fd: int) -> None:
    """The taps of ``netns`` into the namespace ``target_fd``, up again there."""
    from strongbox.sandbox.network import tcfilter

    tcfilter.move_links(netns, taps, target_fd)
    tcfilter.set_up(f"/proc/{os.getpid()}/fd/{target_fd}", taps)


class Kept:
    """A warmed VM between the pool, its owner and its end (see the module docstring)."""

    def __init__(self, booted: Booted, claim: socket.socket, root: Path, agent_fd: int) -> None:
        self.booted, self.claim, self.root = booted, claim, root
        self.agent_fd = agent_fd
        self.adopted = False

    def info(self) -> dict[str, Any]:
        vm = self.booted.vm
        return {"name": self.booted.run_dir.path.name, "root": str(self.root),
                "run_dir": str(self.booted.run_dir.path), "export": str(self.booted.export),
                "vmm_pid": vm.vmm.vmm_pid, "accelerator": vm.vmm.accel.name,
                "memory_mib": vm.spec.memory_mib, "vcpus": vm.spec.vcpus,
                "taps": list(self.booted.network.taps), "keeper_pid": os.getpid()}

    async def serve(self, stop: asyncio.Event) -> None:
        """Answer the claim socket until EOF (or ``stop``), then remove everything."""
        vmm = self.booted.vm.vmm
        exited: asyncio.Task[int] | None = asyncio.create_task(vmm.wait())
        stopping = asyncio.create_task(stop.wait())
        receiving: asyncio.Task[tuple[dict[str, Any] | None, list[int]]] | None = None
        try:
            wire.send(self.claim, {"ready": self.info()})
            while True:
                if receiving is None:
                    receiving = asyncio.create_task(wire.receive(self.claim))
                waiting: set[asyncio.Future[Any]] = {receiving, stopping}
                if exited is not None:
                    waiting.add(exited)
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if exited is not None and exited in done:
                    with contextlib.suppress(OSError):
                        wire.send(self.claim, {"exit": exited.result()})
                    exited = None
                if receiving in done:
                    message, fds = receiving.result()
                    receiving = None
                    if message is None:
                        return
                    self._answer(message, fds)
                elif stopping in done:
                    return
        finally:
            stopping.cancel()
            await wire.cancel(receiving)
            if exited is not None:
                exited.cancel()
            await self.booted.vm.destroy()
            self.booted.release()
            if self.agent_fd >= 0:
                os.close(self.agent_fd)
            self.claim.close()

    def _answer(self, message: dict[str, Any], fds: list[int]) -> None:
        verb = next(iter(message), "")
        out: list[int] = []
        try:
            reply = self._handle(verb, message[verb] if verb else None, fds, out)
        except Exception as exc:  # the owner is told; the VM stays as it was
            reply = {"error": f"{verb}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        try:
            wire.send(self.claim, reply, out)
        except OSError:
            pass  # the holder went: its EOF comes next
        finally:
            for fd in out:
                os.close(fd)

    def _handle(self, verb: str, args: Any, fds: list[int], out: list[int]) -> dict[str, Any]:
        network, vm = self.booted.network, self.booted.vm
        if verb == "adopt":
            if self.adopted:
                raise SandboxError("the VM was adopted already")
            self.adopted = True
            out.extend([self.agent_fd, vm.vmm.namespace_fd(), os.dup(network.netns_fd)])
            self.agent_fd = -1
            return {"vm": self.info()}
        if verb == "move_taps" and len(fds) == 1:
            move_taps(network.path, network.taps, fds[0])
            network.taps, network.bound = [], []  # the engine's namespace has them now
            return {"ok": True}
        if verb == "settle_cgroup" and isinstance(args, dict):
            cgroup = hostcgroup.recorded(Path(str(args.get("run_dir"))))
            if cgroup is None:
                raise SandboxError("no host cgroup recorded in the owner's run directory")
            cgroup.take_in(vm.vmm.vmm_pid)
            return {"ok": True}
        raise SandboxError(f"unknown request {verb!r}")


async def keep(config: Config, *, state_dir: Path, root: Path, name: str,
               claim: socket.socket, bundle: Path) -> int:
    """Boot and warm one VM, then keep it until the claim socket's EOF."""
    started = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    sandbox = Sandbox(config, sandbox_id=name, root=root, state_dir=state_dir)
    pool_gone = asyncio.create_task(wire.receive(claim))  # nothing is sent while warming
    warming = asyncio.create_task(warm(sandbox, bundle))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({pool_gone, warming, stopping}, return_when=asyncio.FIRST_COMPLETED)
    await wire.cancel(pool_gone)
    stopping.cancel()
    if not warming.done():
        warming.cancel()
        with contextlib.suppress(BaseException):
            await warming
        await sandbox.destroy()
        return 0
    try:
        booted = warming.result()
    except Exception as exc:
        await sandbox.destroy()
        log.warning("pool VM %s: %s", name, exc)
        with contextlib.suppress(OSError):
            wire.send(claim, {"failed": str(exc)})
        return 1
    agent_fd = await booted.vm.release_agent()
    log.debug("pool VM %s: warm in %.3fs", name, time.monotonic() - started)
    await Kept(booted, claim, root, agent_fd).serve(stop)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="strongbox-pool-keeper")
    parser.add_argument("--config")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)
    from strongbox import log as logsetup

    logsetup.setup(debug=args.debug)
    claim = socket.socket(fileno=args.fd)
    return asyncio.run(keep(load_config(args.config), state_dir=Path(args.state_dir),
                            root=Path(args.root), name=args.name, claim=claim,
                            bundle=Path(args.bundle)))


if __name__ == "__main__":
    sys.exit(main())
