"""Hotplug adds disks and NICs to a running q35 guest through QMP, one per PCIe root port.

A disk's descriptor goes to QEMU over the QMP socket (SCM_RIGHTS and ``add-fd``:
QEMU never opens a host path, jailed or not), becomes a block node on that fd set
(``blockdev-add``) and a virtio-blk-pci function in a free root port
(``device_add``); the guest's pciehp driver probes it, and the agent waits for the
disk's serial to appear. Removal is ``device_del``: the guest acknowledges by
powering the slot off, which QEMU reports as ``DEVICE_DELETED`` (pciehp waits five
seconds after the attention button before it does, unless the caller's ``eject`` has
the guest power it off at once, given the root port's guest PCI address); then the
node and the fd set go.
A NIC's tap descriptor goes the same way (``getfd``), becomes a tap netdev and a
virtio-net-pci function; the agent finds it by its slot MAC. It leaves as a disk
does, and its netdev with it (QEMU's tap descriptor: the tap is gone then).

Root ports are the capacity: ``pcie_root_port`` of them, each taking one device.
With none free the error names the setting to raise. ``microvm`` has none at all.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from strongbox.errors import HypervisorError
from strongbox.hypervisor.base import DiskSpec, Eject, NicSpec
from strongbox.hypervisor.qemu.cmdline import block_driver
from strongbox.hypervisor.qemu.machine import Machine, port_address, port_id
from strongbox.hypervisor.qemu.qmp import Monitor

#: pciehp's attention-button delay is 5 s; the rest is the guest's unbind.
UNPLUG_TIMEOUT = 20.0
#: How long a node may stay "in use" after its device left: QEMU unparents a device the
#: guest powered off at once but drops its last reference (and the node's) a little later.
RELEASE_TIMEOUT = 5.0


@dataclass
class _Plugged:
    port: int
    node: str
    fdset: int


class Hotplug:
    """The devices hot-plugged into one guest, by serial."""

    def __init__(self, monitor: Monitor, machine: Machine) -> None:
        self.monitor = monitor
        self.machine = machine
        self.plugged: dict[str, _Plugged] = {}

    def _free_port(self, what: str) -> int:
        if not self.machine.pci:
            raise HypervisorError(f"cannot add {what} to a running {self.machine.name} VM: "
                                  "only machine_type = 'q35' takes hot-plugged devices")
        taken = {p.port for p in self.plugged.values()}
        free = [i for i in range(self.machine.root_ports) if i not in taken]
        if not free:
            raise HypervisorError(
                f"cannot add {what}: every PCIe root port ({self.machine.root_ports}) is "
                "in use (hypervisor.qemu.pcie_root_port sets how many devices can be "
                "hot-plugged)")
        return free[0]

    async def add_nic(self, nic: NicSpec, timeout: float = 10.0) -> None:
        """Plug a virtio-net NIC on ``nic``'s tap into a free root port."""
        name = _nic_id(nic.mac)
        if name in self.plugged:
            raise HypervisorError(f"NIC {nic.mac} is plugged in already")
        port = self._free_port(f"NIC {nic.mac}")
        await self.monitor.send_fd(nic.tap_fd, name)
        try:
            await self.monitor.execute("netdev_add", {"type": "tap", "id": name, "fd": name,
                                                      "vhost": False}, timeout)
        except HypervisorError:
            await self.monitor.execute("closefd", {"fdname": name}, timeout)
            raise
        try:
            await self.monitor.execute("device_add", {
                "driver": "virtio-net-pci", "id": name, "bus": port_id(port), "netdev": name,
                "mac": nic.mac, "romfile": "", "disable-legacy": "on"}, timeout)
        except HypervisorError:
            await self.monitor.execute("netdev_del", {"id": name}, timeout)
            raise
        self.plugged[name] = _Plugged(port, name, -1)

    async def add_disk(self, disk: DiskSpec, timeout: float = 10.0) -> None:
        """Plug ``disk`` into a free root port (QEMU keeps its own copy of the fd)."""
        if disk.serial in self.plugged:
            raise HypervisorError(f"disk {disk.serial} is plugged in already")
        port = self._free_port(f"disk {disk.serial}")
        fdset = await self.monitor.add_fd(disk.fd)
        node = f"hp-{disk.serial}"
        try:
            await self.monitor.execute("blockdev-add", {
                "driver": block_driver(disk), "node-name": node,
                "filename": f"/dev/fdset/{fdset}",
                "read-only": disk.readonly, "cache": {"direct": False}}, timeout)
            try:
                await self.monitor.execute("device_add", {
                    "driver": "virtio-blk-pci", "id": disk.serial, "bus": port_id(port),
                    "drive": node, "serial": disk.serial, "disable-legacy": "on"}, timeout)
            except HypervisorError:
                await self.monitor.execute("blockdev-del", {"node-name": node}, timeout)
                raise
        except HypervisorError:
            await self.monitor.execute("remove-fd", {"fdset-id": fdset}, timeout)
            raise
        self.plugged[disk.serial] = _Plugged(port, node, fdset)

    async def remove_disk(self, serial: str, timeout: float = UNPLUG_TIMEOUT,
                          eject: Eject | None = None) -> None:
        """Unplug disk ``serial`` once the guest let it go (it unmounted it first)."""
        plugged = await self._unplug(serial, timeout, eject)
        if plugged is not None:
            await self._delete_node(plugged.node)
            await self.monitor.execute("remove-fd", {"fdset-id": plugged.fdset})

    async def _delete_node(self, node: str) -> None:
        """``blockdev-del`` of ``node``, again while QEMU still says it is in use (the
        device that held it is being finalized), for at most :data:`RELEASE_TIMEOUT`."""
        deadline = time.monotonic() + RELEASE_TIMEOUT
        while True:
            try:
                await self.monitor.execute("blockdev-del", {"node-name": node})
                return
            except HypervisorError as exc:
                if "in use" not in str(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)

    async def remove_nic(self, mac: str, timeout: float = UNPLUG_TIMEOUT,
                         eject: Eject | None = None) -> None:
        """Unplug the NIC :meth:`add_nic` plugged for ``mac`` (the guest hid it first); its
        netdev goes with it, closing QEMU's tap descriptor, so the tap goes too."""
        plugged = await self._unplug(_nic_id(mac), timeout, eject)
        if plugged is not None:
            await self.monitor.execute("netdev_del", {"id": plugged.node})

    async def _unplug(self, device: str, timeout: float, eject: Eject | None
                      ) -> _Plugged | None:
        """``device_del`` and the guest's acknowledgement (``DEVICE_DELETED``), hastened by
        ``eject`` (the guest told to power the slot off now); what the device was plugged
        on, or None for a device this guest never had plugged."""
        plugged = self.plugged.get(device)
        if plugged is None:
            return None
        port = port_address(plugged.port)
        try:
            await self.monitor.execute_until(
                "device_del", {"id": device}, "DEVICE_DELETED", {"device": device}, timeout,
                (lambda: eject(port)) if eject is not None else None)
        except HypervisorError:
            if await self._present(device):
                raise
            # gone already: the guest powered its slot off by itself, and QEMU let it go
        del self.plugged[device]
        return plugged

    async def _present(self, device: str) -> bool:
        """Whether QEMU still has the device with id ``device``."""
        children = await self.monitor.execute("qom-list", {"path": "/machine/peripheral"})
        return any(child.get("name") == device for child in children)


def _nic_id(mac: str) -> str:
    """The QEMU id of the NIC (device and netdev) hot-plugged for slot MAC ``mac``."""
    return "hpnet-" + mac.replace(":", "")
