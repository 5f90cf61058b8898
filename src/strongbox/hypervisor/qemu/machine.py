"""Machine is what differs between QEMU's two machine types: the board, how a device
attaches, what the guest kernel is told.

``microvm`` (the default) has no firmware tables and no PCI: every device is
virtio-mmio, which QEMU announces on the kernel command line, and nothing can be
added to a running guest. ``q35`` is the standard PC with PCI Express: SeaBIOS
starts it (the kernel still enters through PVH), devices are virtio-pci functions
on the root complex, and ``pcie_root_port`` empty root ports take devices
hot-plugged later through QMP. Hotplug is the guest's native PCIe hotplug
(``pciehp``), not ACPI's, as Kata's q35 does: the guest acknowledges a removal by
powering the slot off, which QEMU reports as ``DEVICE_DELETED``.

Both boot the same kernel: it has PCI, PCIe hotplug and ACPI, and on ``microvm``
it is told ``pci=off acpi=off`` so it spends no time probing for either.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Root ports start at this slot of the root complex (cold-plugged devices take the
#: slots below, in the order QEMU assigns them).
_FIRST_PORT_SLOT = 0x10


@dataclass(frozen=True)
class Machine:
    """One machine type with its hotplug capacity (``root_ports``, q35 only)."""

    name: str
    root_ports: int = 0

    @property
    def pci(self) -> bool:
        return self.name == "q35"

    def board(self) -> str:
        """``-machine``'s value (before ``memory-backend=``)."""
        if self.pci:
            # No SATA/SMBus/USB/VGA: nothing a sandbox uses, and each is a device to
            # emulate, migrate and probe. vmport off: no VMware backdoor port.
            return "q35,sata=off,smbus=off,usb=off,graphics=off,vmport=off"
        return "microvm,acpi=off,x-option-roms=off,isa-serial=off"

    def device(self, kind: str, props: str = "") -> str:
        """A ``-device`` value for virtio device ``kind`` ("net", "blk", "9p", "rng",
        "serial") with ``props``: ``virtio-KIND-device`` on mmio, ``virtio-KIND-pci`` on
        PCI (modern virtio only, and no option ROM to look for)."""
        if not self.pci:
            return f"virtio-{kind}-device" + (f",{props}" if props else "")
        extra = ",romfile=" if kind == "net" else ""
        return f"virtio-{kind}-pci,disable-legacy=on{extra}" + (f",{props}" if props else "")

    def board_args(self) -> list[str]:
        """Arguments beyond ``-machine``: q35's root ports and its hotplug mode."""
        if not self.pci:
            return []
        args = ["-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]
        for index in range(self.root_ports):
            slot = _FIRST_PORT_SLOT + index
            args += ["-device", f"pcie-root-port,id={port_id(index)},bus=pcie.0,"
                                f"chassis={index + 1},addr={slot:#x}"]
        return args

    def kernel_params(self) -> tuple[str, ...]:
        """What the guest kernel is told about this board."""
        if self.pci:
            # The root ports' hotplug is the kernel's (pciehp) whatever _OSC says: this
            # kernel has no ASPM, and without it Linux asks the firmware for no control.
            return ("pcie_ports=native",)
        # microvm has no ACPI: power-off is a triple-fault reset; no PCI to probe.
        return ("reboot=t", "pci=off", "acpi=off")


def port_id(index: int) -> str:
    """The QMP id of root port ``index`` (a hot-plugged device's ``bus``)."""
    return f"rp{index}"


def port_address(index: int) -> str:
    """Root port ``index`` as the guest sees it: its PCI address on the root bus."""
    return f"0000:00:{_FIRST_PORT_SLOT + index:02x}.0"
