"""PCI slots: the guest's side of a device leaving a q35 VM's root port.

The host unplugs a device with QMP's ``device_del``: QEMU presses the slot's
attention button and the guest's PCIe hotplug driver (pciehp) waits five
seconds, the time a person has to change their mind, before it powers the
slot off, which QEMU takes as its acknowledgement. Writing ``0`` to the slot's
``power`` file in sysfs is the same power-off without the wait (pciehp cancels
the pending button and disables the slot at once; the write returns when it
has, a second after the power-off, which QEMU acted on at once). The host names
the slot by its root port's PCI address; the slot below it is the one whose
address is on the port's secondary bus. The write runs on a thread of its own:
the agent answers (and goes on serving its containers) while pciehp finishes.
"""

from __future__ import annotations

import _thread
import os
import re

PCI_DEVICES = "/sys/bus/pci/devices"
PCI_SLOTS = "/sys/bus/pci/slots"
_ADDRESS = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")


def slot_below(port: str) -> str:
    """The sysfs directory of the hotplug slot below root port ``port``; FileNotFoundError
    names what is missing, ValueError a malformed address."""
    if not _ADDRESS.fullmatch(port):
        raise ValueError(f"port: expected a PCI address like 0000:00:10.0, got {port!r}")
    try:
        buses = set(os.listdir(os.path.join(PCI_DEVICES, port, "pci_bus")))
    except OSError:
        raise FileNotFoundError(f"no PCI bridge {port} in the guest") from None
    for name in sorted(os.listdir(PCI_SLOTS)):
        try:
            with open(os.path.join(PCI_SLOTS, name, "address")) as f:
                address = f.read().strip()  # domain:bus:device, no function
        except OSError:
            continue
        if address.rsplit(":", 1)[0] in buses:
            return os.path.join(PCI_SLOTS, name)
    raise FileNotFoundError(f"no hotplug slot below PCI bridge {port}")


def eject(port: str) -> None:
    """Power off the slot below ``port`` now (see the module docstring); a slot that is not
    there raises here, what the write meets is the host's to see (no acknowledgement)."""
    _thread.start_new_thread(_power_off, (os.path.join(slot_below(port), "power"),))


def _power_off(power: str) -> None:
    try:
        with open(power, "w") as f:
            f.write("0")
    except OSError:
        pass  # the host waits for QEMU's DEVICE_DELETED, or pciehp's own power-off
