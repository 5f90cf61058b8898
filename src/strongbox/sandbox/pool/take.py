"""Take gets a new sandbox its VM from the warm pool, when a pool runs and has one that fits.

A claim asks the pool (``pool.sock``) for a free VM of this configuration and
shape (:func:`pool_key`: the template's inputs, NIC slots, jail); the answer
is the VM's claim socket, and from then on this process owns the VM (see
:mod:`.keeper`). The hand-over then gives it the host state a booted VM
would have had: its own run directory (locked: the stale collection finds a
killed owner), the spec's network namespace with the VM's taps moved in
(or the VM's own namespace), the host cgroup with QEMU moved in, and the
clone's identity. Anything short of a free VM is an answer, not an error:
the caller clones or boots instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.errors import SandboxError
from strongbox.hypervisor.base import VMM
from strongbox.sandbox.hostcgroup import HostCgroup
from strongbox.sandbox.netns import join_netns
from strongbox.sandbox.network.slots import SandboxNetwork, slot_count
from strongbox.sandbox.pool import wire
from strongbox.sandbox.pool.adopted import AdoptedVM
from strongbox.sandbox.rundir import RunDir
from strongbox.sandbox.vm import GuestVM

log = logging.getLogger("strongbox.sandbox")
#: Seconds a claim may take before the start goes on without the pool.
CLAIM_TIMEOUT = 3.0


def pool_key(config: Config, vmm: VMM, memory_mib: int, vcpus: int) -> str:
    """What a pooled VM must match to be handed to a sandbox of this configuration."""
    shape = {"vmm": vmm.identity(memory_mib, vcpus), "nic_slots": slot_count(config.network),
             "jailer": config.hypervisor.qemu.jailer,
             "vhost": config.network.disable_vhost_net,
             "template": config.factory.enable_template}
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()
                          ).hexdigest()[:32]


async def claim(config: Config, name: str, key: str) -> socket.socket | str:
    """The claim socket of a free pooled VM for ``key``, or why there is none."""
    path = wire.socket_path(config)
    if not path.exists():
        return f"no pool running ({path})"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, str(path))
        answer, fds = await wire.request(sock, {"claim": {"key": key, "owner": name}},
                                         timeout=CLAIM_TIMEOUT)
    except (OSError, SandboxError) as exc:
        return f"pool at {path}: {exc}"
    finally:
        sock.close()
    for extra in fds[1:]:
        os.close(extra)
    if not fds:
        return str(answer.get("none") or "no free VM")
    return socket.socket(fileno=fds[0])


class Adoption:
    """One hand-over; on failure :meth:`undo` ends the VM and the caller releases the rest
    (network, cgroup, run directory) as for any VM."""

    def __init__(self, claim_sock: socket.socket, run_dir: RunDir) -> None:
        self.claim, self.run_dir = claim_sock, run_dir
        self.adopted: AdoptedVM | None = None
        self.vm: GuestVM | None = None
        self.network: SandboxNetwork | None = None
        self.info: dict[str, Any] = {}

    async def adopt(self, vmm: VMM, *, name: str, netns: str | None) -> AdoptedVM:
        answer, fds = await wire.request(self.claim, {"adopt": {"owner": name}})
        if len(fds) != 3 or not isinstance(answer.get("vm"), dict):
            for fd in fds:
                os.close(fd)
            raise SandboxError("pool: an adopt answer without the VM's descriptors")
        agent_fd, pidfd, vm_netns = fds
        info = self.info = answer["vm"]
        spec = vmm.vm_spec(name=str(info["name"]), run_dir=Path(str(info["run_dir"])),
                           memory_mib=int(info["memory_mib"]), vcpus=int(info["vcpus"]))
        self.adopted = AdoptedVM(spec, vmm.accelerator(), self.claim, agent_fd=agent_fd,
                                 pidfd=pidfd, info=info)
        self.network = SandboxNetwork.adopted(
            sandbox_id=name, netns=netns, vm_netns_fd=vm_netns,
            taps=[str(t) for t in info["taps"]], run_dir=self.run_dir.path)
        if netns and self.network.taps:
            await wire.request(self.claim, {"move_taps": {}}, [self.network.netns_fd])
        return self.adopted

    async def settle(self, cgroup: HostCgroup) -> None:
        """The owner joins the host cgroup; the keeper moves QEMU in."""
        cgroup.record(self.run_dir.path)
        cgroup.create()
        cgroup.enter()
        await wire.request(self.claim, {"settle_cgroup": {"run_dir": str(self.run_dir.path)}})

    async def take(self, config: Config, vmm: VMM, *, name: str, netns: str | None,
                   cgroup: HostCgroup | None, owner_joins_netns: bool, timeout: float
                   ) -> GuestVM:
        """Adopt the claimed VM and settle its owner: the VM, with a ready agent."""
        adopted = await self.adopt(vmm, name=name, netns=netns)
        if cgroup is not None:
            await self.settle(cgroup)
        self.vm = GuestVM(adopted, request_timeout=config.agent.request_timeout)
        await self.vm.boot(timeout)
        assert self.network is not None
        if owner_joins_netns:
            join_netns(self.network.path)
        return self.vm

    @property
    def export(self) -> Path:
        return Path(str(self.info["export"]))

    @property
    def vm_name(self) -> str:
        return str(self.info.get("name", ""))

    async def undo(self) -> None:
        """After a failed hand-over: the VM goes (it never returns to the pool)."""
        if self.vm is not None:
            await self.vm.destroy()
        elif self.adopted is not None:
            await self.adopted.close()
        else:
            self.claim.close()
