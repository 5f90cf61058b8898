"""Disks: block devices the host passed for a container, found by serial and mounted.

A container whose root file system is a block device on the host gets that device as
a virtio-blk disk (at boot, or hot-plugged into a running VM) instead of a 9p
directory. The host names it by its serial (``/sys/block/vdX/serial``); the node
appears once the kernel has probed it, which after a hotplug takes a moment, so the
search waits. The mount lives under the container's directory and goes with it.
"""

from __future__ import annotations

import os
import time
from typing import Any

from strongbox.agent.share import CONTAINERS_DIR
from strongbox.container._syscalls import MS_RDONLY, mount, umount

#: How long a hot-plugged disk may take to appear (PCIe hotplug, then the probe).
APPEAR_TIMEOUT = 10.0


def find_disk(serial: str, timeout: float = APPEAR_TIMEOUT) -> str:
    """``/dev/vdX`` whose serial is ``serial``, waiting up to ``timeout`` s for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            names = os.listdir("/sys/block")
        except OSError:
            names = []
        for name in names:
            try:
                with open(f"/sys/block/{name}/serial") as f:
                    found = f.read().strip()
            except OSError:
                continue
            if found == serial and os.path.exists(f"/dev/{name}"):
                return f"/dev/{name}"
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"disk {serial!r} did not appear in the guest")
        time.sleep(0.02)


def mount_disk(container_id: str, disk: dict[str, Any], name: str = "disk") -> str:
    """Mount one of the container's disks (its rootfs: ``disk``; a bind source:
    ``disks/<n>``); the directory it is mounted on."""
    device = find_disk(disk["serial"])
    target = os.path.join(CONTAINERS_DIR, container_id, name)
    os.makedirs(target, exist_ok=True)
    mount(device, target, disk["fstype"], MS_RDONLY if disk.get("readonly") else 0, "")
    return target


def mount_volumes(container_id: str, disks: dict[str, Any]) -> dict[int, str]:
    """Mount the disks that are bind sources, each once (several binds may share one);
    spec mount index -> where its disk is mounted."""
    mounted: dict[str, str] = {}
    for index, disk in sorted(disks.items()):
        if disk["serial"] not in mounted:
            mounted[disk["serial"]] = mount_disk(container_id, disk, f"disks/{index}")
    return {int(index): mounted[disk["serial"]] for index, disk in disks.items()}


def release_disk(container_id: str) -> None:
    """Unmount the container's disks (best effort: its processes are gone, and the host
    takes a device back only once it is unplugged or the VM stops)."""
    base = os.path.join(CONTAINERS_DIR, container_id)
    try:
        volumes = [os.path.join("disks", n) for n in os.listdir(os.path.join(base, "disks"))]
    except OSError:
        volumes = []
    for name in ("disk", *volumes):
        target = os.path.join(base, name)
        if os.path.ismount(target):
            try:
                umount(target, 0)
            except OSError:
                umount(target, 2)  # MNT_DETACH: something still holds it open
