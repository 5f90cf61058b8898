"""Hotplug on q35: a pod member's block-device rootfs arrives in the running VM through a
PCIe root port, is usable, and leaves again (the guest acknowledges) when it is removed;
more devices than root ports get one clear error naming ``pcie_root_port``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from strongbox.config import parse_config
from strongbox.errors import AgentRequestError, HypervisorError
from strongbox.oci.spec import load_bundle
from strongbox.protocol import verbs
from strongbox.runtime.paths import DEFAULT_STATE_DIR
from strongbox.sandbox.plan import ContainerRequest
from strongbox.sandbox.sandbox import Sandbox
from tests.framework.blockimage import LoopImage
from tests.framework.bundle import make_bundle

pytestmark = pytest.mark.vm


def _q35(root_ports: int) -> dict[str, object]:
    return {"hypervisor": {"qemu": {"machine_type": "q35", "pcie_root_port": root_ports,
                                    "disable_block_device_use": False}}}


@pytest.fixture
def images(tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[list[LoopImage]]:
    with LoopImage(tmp_path / "a", tmp_path / "a" / "bundle" / "rootfs") as a, \
            LoopImage(tmp_path / "b", tmp_path / "b" / "bundle" / "rootfs") as b:
        yield [a, b]


def _request(cid: str, bundle: Path, *, pod_member: bool = True) -> ContainerRequest:
    spec, rootfs = load_bundle(str(bundle))
    return ContainerRequest(id=cid, spec=spec, rootfs=rootfs, stdin=False,
                            pod_member=pod_member)


def _member(image: LoopImage, script: str) -> Path:
    bundle = image.mount.parent
    return make_bundle(bundle, ["sh", "-c", script], rootfs=image.mount, root__readonly=False)


@asynccontextmanager
async def q35_pod(root: Path, first: Path, root_ports: int = 2) -> AsyncIterator[Sandbox]:
    """A q35 sandbox whose first container (``pause``) runs ``first``'s bundle."""
    sandbox = Sandbox(parse_config(_q35(root_ports)), sandbox_id=f"hp-{os.getpid()}",
                      root=root, state_dir=DEFAULT_STATE_DIR)
    try:
        await sandbox.launch(_request("pause", first, pod_member=False))
        await sandbox.start_container("pause")
        yield sandbox
    finally:
        try:
            await sandbox.stop()
        finally:
            await sandbox.destroy()


async def _run_member(sandbox: Sandbox, bundle: Path, image: LoopImage) -> None:
    """Add, run and remove pod member ``member``; its device is the guest's meanwhile."""
    await sandbox.add_container(_request("member", bundle))
    assert not image.mounted()  # the guest has it now, the host does not
    await sandbox.start_container("member")
    assert (await sandbox.wait_process("member")).code == 0
    await sandbox.remove_container("member")  # unplugged: the guest acknowledges
    assert image.mounted(), "the device did not come back after the unplug"
    vm = sandbox.vm
    assert vm is not None and vm.alive  # the pod goes on


def test_a_pod_members_disk_is_hot_plugged_used_and_unplugged(
        images: list[LoopImage], no_leaks: Path, tmp_path: Path) -> None:
    first = make_bundle(tmp_path / "first", ["sleep", "1000"], root__readonly=False)
    image = images[0]
    member = _member(image, "grep ' / ' /proc/mounts > /seen; echo hot > /made")

    async def pod() -> None:
        async with q35_pod(no_leaks, first) as sandbox:
            await _run_member(sandbox, member, image)

    asyncio.run(asyncio.wait_for(pod(), 180))
    assert (image.mount / "seen").read_text().split()[:3] == ["/dev/vda", "/", "ext4"]
    assert (image.mount / "made").read_text() == "hot\n"


def test_more_disks_than_root_ports_is_one_clear_error(
        images: list[LoopImage], no_leaks: Path, tmp_path: Path) -> None:
    first = make_bundle(tmp_path / "first", ["sleep", "1000"], root__readonly=False)
    members = [_member(image, "sleep 1000") for image in images]

    async def pod() -> str:
        async with q35_pod(no_leaks, first, root_ports=1) as sandbox:
            await sandbox.add_container(_request("m1", members[0]))
            with pytest.raises(HypervisorError) as info:
                await sandbox.add_container(_request("m2", members[1]))
            assert "m2" not in sandbox.containers
            return str(info.value)

    message = asyncio.run(asyncio.wait_for(pod(), 180))
    assert "pcie_root_port" in message and "every PCIe root port (1)" in message, message
    assert all(image.mounted() for image in images)  # both given back, the refused one at once


def test_a_pod_members_block_volume_arrives_by_hotplug(images: list[LoopImage], no_leaks: Path,
                                                       tmp_path: Path) -> None:
    first = make_bundle(tmp_path / "first", ["sleep", "1000"], root__readonly=False)
    image = images[0]
    member = make_bundle(tmp_path / "member", ["sh", "-c", "grep ' /vol ' /proc/mounts > "
                                               "/vol/seen"], root__readonly=False)
    spec = json.loads((member / "config.json").read_text())
    spec["mounts"].append({"destination": "/vol", "type": "bind", "source": str(image.mount),
                           "options": ["rbind", "rw"]})
    (member / "config.json").write_text(json.dumps(spec))

    async def pod() -> None:
        async with q35_pod(no_leaks, first) as sandbox:
            await _run_member(sandbox, member, image)

    asyncio.run(asyncio.wait_for(pod(), 180))
    seen = (image.mount / "seen").read_text().split()
    assert seen[0].startswith("/dev/vd") and seen[2] == "ext4", seen


def test_a_disk_the_guest_ejected_by_itself_still_leaves_cleanly(
        images: list[LoopImage], no_leaks: Path, tmp_path: Path) -> None:
    """The guest may power a slot off on its own (an eject before the host asked): the
    removal then finds the device gone, and the host takes it back all the same; what the
    eject verb refuses is one error naming the port."""
    first = make_bundle(tmp_path / "first", ["sleep", "1000"], root__readonly=False)
    image = images[0]
    member = _member(image, "sleep 1000")

    async def pod() -> list[str]:
        async with q35_pod(no_leaks, first) as sandbox:
            vm = sandbox.vm
            assert vm is not None
            refused = []
            for port in ("../../../etc", "0000:00:05.0"):
                with pytest.raises(AgentRequestError) as info:
                    await vm.call(verbs.EJECT_SLOT, {"port": port})
                refused.append(str(info.value))
            await sandbox.add_container(_request("member", member))
            (disk,) = sandbox.attached.disks["member"]
            hotplug = vm.vmm.hotplug  # type: ignore[attr-defined]
            assert await hotplug._present(disk.serial)
            await vm.call(verbs.EJECT_SLOT, {"port": "0000:00:10.0"})  # its root port
            for _ in range(100):  # the guest answers first, then powers the slot off
                if not await hotplug._present(disk.serial):
                    break
                await asyncio.sleep(0.05)
            assert not await hotplug._present(disk.serial)  # QEMU let it go by itself
            await sandbox.remove_container("member")
            assert image.mounted(), "the device did not come back"
            assert vm.alive
            return refused

    refused = asyncio.run(asyncio.wait_for(pod(), 180))
    assert "expected a PCI address like 0000:00:10.0" in refused[0], refused
    assert "no PCI bridge 0000:00:05.0" in refused[1], refused
