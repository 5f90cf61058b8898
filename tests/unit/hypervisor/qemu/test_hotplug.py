"""Hotplug's QMP conversation, against a recording monitor (the real one runs in
tests/integration/test_hotplug.py and test_network_sandbox.py on a real q35 guest)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from strongbox.errors import HypervisorError
from strongbox.hypervisor.base import DiskSpec, NicSpec
from strongbox.hypervisor.qemu.hotplug import Hotplug
from strongbox.hypervisor.qemu.machine import Machine


class Recorder:
    """Answers every command; records commands, fds and ejects in order."""

    def __init__(self) -> None:
        self.log: list[Any] = []

    async def execute(self, command: str, arguments: dict[str, Any] | None = None,
                      timeout: float = 10.0) -> dict[str, Any]:
        self.log.append((command, arguments))
        return {}

    async def add_fd(self, fd: int) -> int:
        self.log.append(("add-fd", fd))
        return 7

    async def send_fd(self, fd: int, name: str) -> None:
        self.log.append(("getfd", name))

    async def execute_until(self, command: str, arguments: dict[str, Any], event: str,
                            match: dict[str, Any], timeout: float,
                            meanwhile: Callable[[], Awaitable[None]] | None = None) -> None:
        self.log.append((command, arguments, event, match))
        if meanwhile is not None:
            await meanwhile()


def _plugged(ports: int = 2) -> tuple[Hotplug, Recorder]:
    monitor = Recorder()
    return Hotplug(monitor, Machine("q35", ports)), monitor  # type: ignore[arg-type]


def test_a_disk_goes_in_a_free_port_and_leaves_with_the_guest_told_to_eject() -> None:
    hotplug, monitor = _plugged()
    ejected: list[str] = []

    async def eject(port: str) -> None:
        ejected.append(port)
        monitor.log.append(("eject", port))

    async def scenario() -> None:
        await hotplug.add_nic(NicSpec(tap_fd=5, mac="02:73:62:00:00:02"))  # takes rp0
        await hotplug.add_disk(DiskSpec(fd=9, serial="sbd1"))  # rp1
        monitor.log.clear()
        await hotplug.remove_disk("sbd1", eject=eject)
        await hotplug.remove_nic("02:73:62:00:00:02", eject=eject)

    asyncio.run(scenario())
    assert monitor.log == [
        ("device_del", {"id": "sbd1"}, "DEVICE_DELETED", {"device": "sbd1"}),
        ("eject", "0000:00:11.0"),  # after device_del: its event is pending then
        ("blockdev-del", {"node-name": "hp-sbd1"}),
        ("remove-fd", {"fdset-id": 7}),
        ("device_del", {"id": "hpnet-027362000002"}, "DEVICE_DELETED",
         {"device": "hpnet-027362000002"}),
        ("eject", "0000:00:10.0"),
        ("netdev_del", {"id": "hpnet-027362000002"}),
    ]
    assert hotplug.plugged == {}


def test_unplugging_what_was_never_plugged_does_nothing() -> None:
    hotplug, monitor = _plugged()

    async def never(port: str) -> None:
        raise AssertionError(port)

    asyncio.run(hotplug.remove_disk("nope", eject=never))
    asyncio.run(hotplug.remove_nic("02:73:62:00:00:09", eject=never))
    assert monitor.log == []


def test_no_free_root_port_names_the_setting() -> None:
    hotplug, _ = _plugged(ports=1)
    asyncio.run(hotplug.add_disk(DiskSpec(fd=9, serial="sbd1")))
    with pytest.raises(HypervisorError, match=r"every PCIe root port \(1\) is in use "
                                              r"\(hypervisor.qemu.pcie_root_port"):
        asyncio.run(hotplug.add_nic(NicSpec(tap_fd=5, mac="02:73:62:00:00:02")))
    microvm = Hotplug(Recorder(), Machine("microvm", 0))  # type: ignore[arg-type]
    with pytest.raises(HypervisorError, match=r"only machine_type = 'q35' takes hot-plugged"):
        asyncio.run(microvm.add_disk(DiskSpec(fd=9, serial="sbd1")))


def test_a_node_still_in_use_just_after_its_device_left_is_deleted_again() -> None:
    """QEMU drops a self-ejected device's last reference (and its node's) a little after
    unparenting it: ``blockdev-del`` says "in use" meanwhile, then succeeds."""
    hotplug, monitor = _plugged()
    refusals = [HypervisorError("QMP blockdev-del: Node hp-sbd1 is in use")] * 2
    answer = monitor.execute

    async def busy_then_free(command: str, arguments: dict[str, Any] | None = None,
                             timeout: float = 10.0) -> dict[str, Any]:
        if command == "blockdev-del" and refusals:
            monitor.log.append((command, arguments))
            raise refusals.pop()
        return await answer(command, arguments, timeout)

    monitor.execute = busy_then_free  # type: ignore[method-assign]

    async def scenario() -> None:
        await hotplug.add_disk(DiskSpec(fd=9, serial="sbd1"))
        monitor.log.clear()
        await hotplug.remove_disk("sbd1")

    asyncio.run(scenario())
    assert [entry[0] for entry in monitor.log] == [
        "device_del", "blockdev-del", "blockdev-del", "blockdev-del", "remove-fd"]
