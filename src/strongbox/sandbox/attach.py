"""Attach gives a container created in a running VM its files: shares and its rootfs disk.

Shares (the rootfs directory, bind sources) are bound into the VM's 9p export inside
QEMU's mount namespace (:mod:`.vmmounts`). A block-device rootfs that was not
attached at boot (a pod member, a clone, any q35 VM) is hot-plugged
(:meth:`VM.add_disk`, a PCIe root port on q35): the device is taken from the host
first (:mod:`.blockroot`, recorded in the VM's run directory), and QEMU keeps its
own descriptor. When the container is removed from a VM that goes on, its disk is
unplugged (the guest acknowledges) and mounted back on the host; the last
container's goes with the VM.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from strongbox.errors import HypervisorError, SandboxError
from strongbox.hypervisor.base import DiskSpec
from strongbox.sandbox import blockroot, vmmounts
from strongbox.sandbox.imagedisk import ImageFile
from strongbox.sandbox.plan import ContainerPlan, GuestDisk

if TYPE_CHECKING:
    from strongbox.sandbox.boot import Booted

log = logging.getLogger("strongbox.sandbox")


class Attachments:
    """What the containers of one sandbox have attached to its running VM."""

    def __init__(self, enter_host: Callable[[], None] | None) -> None:
        self.enter_host = enter_host
        self.disks: dict[str, list[GuestDisk]] = {}

    async def attach(self, booted: Booted | None, plan: ContainerPlan, *, exported: bool
                     ) -> str:
        """Export ``plan``'s shares (unless ``exported`` already) and plug its disks (unless
        they came at boot); what was attached, for the timeline."""
        if booted is None:
            raise SandboxError(f"container {plan.id}: its sandbox is not running")
        if not exported:
            vmmounts.export_container(booted.vm.vmm.namespace_fd, booted.export,
                                      plan.rootfs_target, plan.rootfs_mounts, plan.shares)
        plugged = self.disks.setdefault(plan.id, [])
        for disk in plan.disks:
            if disk.serial not in booted.boot_disks:
                await self._plug(booted, disk)
                plugged.append(disk)
        disks = ", ".join(f"{d.field} {d.mount.device}" for d in plan.disks)
        return f"{len(plan.shares)} shares" + (f", disks: {disks}" if disks else "")

    async def _plug(self, booted: Booted, disk: GuestDisk) -> None:
        """Take ``disk``'s device from the host and hot-plug it; on failure it goes back."""
        run_dir = booted.run_dir.path
        vmm = booted.vm.vmm
        mount = disk.mount
        if isinstance(mount, ImageFile):  # a cached image: nothing to take from the host
            fd = mount.open()
        else:
            fd = blockroot.take(mount, disk.field, run_dir, readonly=disk.readonly,
                                enter_host=self.enter_host,
                                also=lambda: vmmounts.unmount_device(vmm.namespace_fd,
                                                                     mount.rdev))
        try:
            await vmm.add_disk(DiskSpec(fd, disk.serial, disk.readonly))
        except BaseException:
            os.close(fd)
            fd = -1
            if not isinstance(mount, ImageFile):
                blockroot.hand_back(run_dir, mount, self.enter_host)
            raise
        finally:
            if fd >= 0:
                os.close(fd)  # QEMU holds its own copy (and with it the O_EXCL claim)

    async def detach(self, booted: Booted | None, container_id: str, *, alive: bool,
                     last: bool) -> None:
        """Undo :meth:`attach` once the guest released the container: its binds, and its
        disk unplugged and given back (not for the ``last`` container: its VM is about to
        go, and the disk with it)."""
        disks = self.disks.pop(container_id, [])
        if booted is None or not alive:
            return  # no VM, no namespace: nothing mounted, nothing plugged any more
        vmmounts.unexport_container(booted.vm.vmm.namespace_fd, booted.export, container_id)
        for disk in disks if not last else []:
            try:
                await booted.vm.vmm.remove_disk(disk.serial, eject=booted.vm.eject)
            except HypervisorError as exc:  # the guest holds on: it goes back with the VM
                log.warning("container %s: disk %s stays plugged in until the VM stops: %s",
                            container_id, disk.serial, exc)
                continue
            if not isinstance(disk.mount, ImageFile):
                blockroot.hand_back(booted.run_dir.path, disk.mount, self.enter_host)
