"""Network sync keeps the guest's NICs matching the sandbox's network namespace, for its life.

The guest is told the namespace's interfaces after boot, before each container
starts (Docker's hook adds its veth after ``create``) and, with ``[network]
enable_netmon``, whenever the namespace changes while containers run
(:mod:`.network.netmon`). One look (:func:`sync_network`) binds new
interfaces to free NIC slots and frees the slots of interfaces that went away.
Where the VM takes hot-plugged devices (q35's root ports) an interface beyond
the slots gets a NIC plugged for it, as Kata's netmon would, and a plugged NIC
whose interface went away leaves again: the guest hides it first (it is
unbound in the request it applies), then the VMM unplugs it, in the
background (the guest powers the slot off when told, else its PCIe hotplug
driver takes five seconds to acknowledge); until then its slot is out of every
request and no interface binds to it, and afterwards it can be plugged again.
:class:`NetworkSync` keeps the looks one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from strongbox.errors import AgentRequestError, HypervisorError, SandboxError
from strongbox.protocol import verbs
from strongbox.sandbox.network.netmon import NetMonitor
from strongbox.sandbox.network.slots import NoFreeSlot, SandboxNetwork, slot_mac
from strongbox.sandbox.vm import GuestVM

log = logging.getLogger("strongbox.sandbox")


async def sync_network(vm: GuestVM, network: SandboxNetwork) -> None:
    """Give the guest the namespace's interfaces, if they changed since it was last told."""
    started = time.monotonic()
    request = await _synced(vm, network)
    if request is None:
        return
    host = time.monotonic() - started
    try:
        await vm.call(verbs.CONFIGURE_NETWORK, request)
    except AgentRequestError as exc:
        raise SandboxError(f"guest network: {exc}") from exc
    network.mark_applied(request)
    bound = sum(1 for nic in request["nics"] if nic["interface"] is not None)
    log.debug("sandbox %s: network: %d of %d NIC slots bound (host %.3fs, guest %.3fs)",
              network.sandbox_id, bound, len(request["nics"]), host,
              time.monotonic() - started - host)


async def _synced(vm: GuestVM, network: SandboxNetwork) -> dict[str, Any] | None:
    """:meth:`SandboxNetwork.sync`; an interface beyond the NIC slots gets a NIC hot-plugged
    for it where the VM takes one."""
    while True:
        try:
            return network.sync()
        except NoFreeSlot as exc:
            slot, nic = network.add_slot()
            try:
                await vm.vmm.add_nic(nic)
            except HypervisorError as why:
                network.drop_slot(slot)
                raise SandboxError(f"{exc}; {why}") from None
            finally:
                os.close(nic.tap_fd)  # QEMU holds its own copy now
            log.debug("sandbox %s: hot-plugged NIC %s for a new interface", network.sandbox_id,
                      nic.mac)


class NetworkSync:
    """The looks at one running sandbox's namespace, one at a time, and the NICs leaving."""

    def __init__(self, vm: GuestVM, network: SandboxNetwork) -> None:
        self.vm, self.network = vm, network
        self._lock = asyncio.Lock()
        self._unplugs: set[asyncio.Task[None]] = set()
        self._monitor: NetMonitor | None = None

    async def sync(self) -> None:
        """One look (:func:`sync_network`); hot-plugged NICs left unbound then leave."""
        async with self._lock:
            await sync_network(self.vm, self.network)
            for slot in self.network.idle_hot_slots():
                self.network.leave(slot)
                task = asyncio.get_running_loop().create_task(self._unplug(slot))
                self._unplugs.add(task)
                task.add_done_callback(self._unplugs.discard)

    async def _changed(self) -> None:
        """The namespace changed: look, unless the VM is on its way out (a stop under way,
        or an exit: the guest would not answer, and the NICs go with it)."""
        if not self.vm.stopping:
            await self.sync()

    async def _unplug(self, slot: int) -> None:
        mac = slot_mac(slot)
        started = time.monotonic()
        try:
            await self.vm.vmm.remove_nic(mac, eject=self.vm.eject)
        except HypervisorError as exc:  # the slot stays out of use, its root port taken
            log.warning("sandbox %s: NIC %s was not unplugged: %s", self.network.sandbox_id,
                        mac, exc)
            return
        self.network.left(slot)
        log.debug("sandbox %s: unplugged NIC %s, its interface gone (%.3fs)",
                  self.network.sandbox_id, mac, time.monotonic() - started)

    async def settled(self) -> None:
        """Wait for the NICs being unplugged (tests, and an orderly stop)."""
        while self._unplugs:
            await asyncio.gather(*self._unplugs, return_exceptions=True)

    def watch(self, enabled: bool) -> None:
        """With ``enabled`` (``[network] enable_netmon``) and NICs to keep in step, look
        again whenever the namespace changes (:mod:`.network.netmon`)."""
        if enabled and self.network.taps and self._monitor is None:
            self._monitor = NetMonitor(self.network.path, self._changed)
            self._monitor.start()

    def close(self) -> None:
        """The VM is going: no more looks, no unplugs (the NICs go with it)."""
        if self._monitor is not None:
            self._monitor.stop()
            self._monitor = None
        for task in list(self._unplugs):
            task.cancel()
