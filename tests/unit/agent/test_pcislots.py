"""Finding the hotplug slot below a root port, on a sysfs tree shaped like a q35 guest's
(the real eject runs in tests/integration/test_hotplug.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from strongbox.agent import pcislots


@pytest.fixture
def sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two root ports (00:10.0 on bus 01, 00:11.0 on bus 02), slots named as pciehp does
    when the ports share a physical slot number."""
    for port, bus in (("0000:00:10.0", "0000:01"), ("0000:00:11.0", "0000:02")):
        (tmp_path / "devices" / port / "pci_bus" / bus).mkdir(parents=True)
    for name, address in (("0", "0000:01:00"), ("0-1", "0000:02:00")):
        slot = tmp_path / "slots" / name
        slot.mkdir(parents=True)
        (slot / "address").write_text(address + "\n")
        (slot / "power").write_text("1\n")
    monkeypatch.setattr(pcislots, "PCI_DEVICES", str(tmp_path / "devices"))
    monkeypatch.setattr(pcislots, "PCI_SLOTS", str(tmp_path / "slots"))
    return tmp_path


def test_the_slot_on_the_ports_secondary_bus_is_powered_off(sysfs: Path) -> None:
    assert pcislots.slot_below("0000:00:11.0") == str(sysfs / "slots" / "0-1")
    pcislots.eject("0000:00:11.0")  # the write is on a thread: pciehp takes a second
    power = sysfs / "slots" / "0-1" / "power"
    deadline = time.monotonic() + 5
    while power.read_text() != "0" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert power.read_text() == "0"
    assert (sysfs / "slots" / "0" / "power").read_text() == "1\n"  # the other is untouched


@pytest.mark.parametrize(("port", "error", "message"), [
    ("../../x", ValueError, r"^port: expected a PCI address like 0000:00:10.0, got '../../x'$"),
    ("0000:00:12.0", FileNotFoundError, r"^no PCI bridge 0000:00:12.0 in the guest$"),
])
def test_what_is_not_a_root_port_is_refused(sysfs: Path, port: str, error: type[Exception],
                                             message: str) -> None:
    with pytest.raises(error, match=message):
        pcislots.slot_below(port)


def test_a_bridge_without_a_slot_is_refused(sysfs: Path) -> None:
    (sysfs / "devices" / "0000:00:12.0" / "pci_bus" / "0000:03").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"^no hotplug slot below PCI bridge 0000:00:12"):
        pcislots.slot_below("0000:00:12.0")
