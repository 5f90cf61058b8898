"""Plan turns one container request into what the sandbox does for it: spec, shares, rootfs, size.

Logic over the request (and, for a rootfs on a block device, the host's mount
table), the same for both front doors: the CLI's monitor and the shim
each describe the container they want as a :class:`ContainerRequest` (a
validated OCI spec, where its root filesystem is on the host, how its stdio
is used) and :class:`~strongbox.sandbox.sandbox.Sandbox` plans and carries it
out. ``plan_container`` decides

* the spec the guest can honour (:func:`~.guestspec.guest_spec`: host
  namespace paths dropped, a pod member's namespaces pointed at its pod's);
* the host network namespace the VMM must run in (the first container's);
* what to export over 9p: the rootfs directory (read-only where the spec
  says so, and for ``overlay``, whose writes stay in guest memory) and the
  bind-mount sources, with the agent's map of mount index -> share path;
* containerd's rootfs mounts, when it gave a mount list instead of a
  directory (mounted into the export inside the VMM's mount namespace);
* a rootfs that is the whole file system of a block device, with block devices on
  (``disable_block_device_use = false``): a disk for the guest, not a share;

and ``vm_size_for`` sizes the VM from the first container's limits.

It is also the one check of what crosses to the guest (:func:`check_guest_request`):
a request must fit the protocol's declaration and one frame (``MAX_PAYLOAD``). A
container whose request cannot be sent is refused while planning, before any VM
boots, with a line that names the limit; ``check_exec`` does the same for a
process to run in a container, before it is sent.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongbox.errors import ConfigError, SandboxError
from strongbox.hypervisor.base import VMShape
from strongbox.oci.sizing import vm_size
from strongbox.oci.spec import validate_process
from strongbox.protocol import verbs
from strongbox.protocol.frame import MAX_PAYLOAD
from strongbox.protocol.jsoncodec import dumps
from strongbox.protocol.messages import InvalidParams
from strongbox.protocol.verbs import Verb
from strongbox.sandbox import imagedisk
from strongbox.sandbox.blockroot import BlockMount, mount_table
from strongbox.sandbox.blockroot import find as find_block_mount
from strongbox.sandbox.guestspec import guest_spec
from strongbox.sandbox.imagedisk import ImageFile
from strongbox.sandbox.shares import Share, bind_shares


@dataclass(frozen=True)
class ContainerRequest:
    """One container a front door asks for."""

    id: str
    #: The validated OCI spec (``process.terminal`` as the caller wants it).
    spec: dict[str, Any]
    #: The root filesystem's host directory (the bundle's ``root.path``, resolved).
    rootfs: str
    #: containerd's rootfs mounts (overlay, bind ...); when given they are mounted
    #: at the container's rootfs in the export instead of sharing ``rootfs``.
    rootfs_mounts: tuple[dict[str, Any], ...] = ()
    #: Share the rootfs read-only and keep the container's writes in guest memory.
    overlay: bool = False
    #: The caller feeds the process's stdin (else it reads EOF at once).
    stdin: bool = True
    #: A pod member: it joins the ipc, uts and pid namespaces of the sandbox's
    #: first container (the pod's infrastructure container) in the guest.
    pod_member: bool = False
    #: The bundle directory (the ``bundle`` of the state OCI hooks are given).
    bundle: str = ""


@dataclass(frozen=True)
class ContainerPlan:
    """What the sandbox must do for one :class:`ContainerRequest`."""

    id: str
    #: The spec the agent gets.
    spec: dict[str, Any]
    #: The host network namespace named by the spec (the VMM runs in the first one's).
    netns: str | None
    #: Host paths to export, at ``<id>/rootfs`` and ``<id>/mounts/<n>/<source's name>``.
    shares: list[Share]
    #: The agent's map of spec mount index -> path in the export.
    mounts: dict[str, str]
    #: containerd's rootfs mounts, to mount at ``<id>/rootfs`` (else ``shares`` has it).
    rootfs_mounts: list[dict[str, Any]] = field(default_factory=list)
    #: Block devices the guest mounts itself: the rootfs, bind sources (no share has them).
    disks: tuple[GuestDisk, ...] = ()

    @property
    def rootfs_target(self) -> str:
        return rootfs_target(self.id)

    @property
    def rootfs_disk(self) -> GuestDisk | None:
        return next((d for d in self.disks if not d.mount_indexes), None)


def rootfs_target(container_id: str) -> str:
    """Where a container's root filesystem is in the export (the agent's layout)."""
    return f"{container_id}/rootfs"


def disk_serial(container_id: str, mount_index: int | None = None) -> str:
    """The serial the guest finds a container's disk by: virtio-blk carries 20 bytes, so a
    digest of the id and the mount (ids are longer, and unique only whole)."""
    key = container_id if mount_index is None else f"{container_id}/{mount_index}"
    return "sb" + hashlib.sha256(key.encode()).hexdigest()[:18]


@dataclass(frozen=True)
class GuestDisk:
    """A block device's whole file system the guest mounts itself (:mod:`.blockroot`): the
    rootfs (no ``mount_indexes``) or the source of those bind mounts (one device, mounted
    once: read-write if any of them is, each bind read-only where its options say so)."""

    mount: BlockMount | ImageFile  # a host block device's mount, or a cached image file
    serial: str
    readonly: bool
    mount_indexes: tuple[int, ...] = ()

    @property
    def image(self) -> ImageFile | None:
        return self.mount if isinstance(self.mount, ImageFile) else None

    @property
    def field(self) -> str:
        """Where the spec names it, for errors."""
        return f"mounts[{self.mount_indexes[0]}].source" if self.mount_indexes else "root.path"

    def to_agent(self) -> dict[str, Any]:
        return {"serial": self.serial, "fstype": self.mount.fstype, "readonly": self.readonly}


def _block_disks(request: ContainerRequest, readonly: bool, binds: list[Share],
                 mounts: dict[str, str], image_root: bool = False) -> list[GuestDisk]:
    """The rootfs (unless it is an image) and bind sources that are whole block-device file
    systems, as disks; their shares (and the bind sources' entries in ``mounts``) are
    taken out of ``binds``."""
    disks: dict[int, GuestDisk] = {}  # by device
    table = mount_table()  # one read of the mount table for the rootfs and every bind
    block = None if request.rootfs_mounts or image_root else \
        find_block_mount(request.rootfs, table)
    if block is not None:
        disks[block.rdev] = GuestDisk(block, disk_serial(request.id), readonly)
    by_target = {share.target: share for share in binds}
    for index, target in list(mounts.items()):
        share = by_target[target]
        block = find_block_mount(share.source, table)
        if block is None:
            continue
        seen = disks.get(block.rdev)
        if seen is not None and not seen.mount_indexes:
            raise SandboxError(f"mounts[{index}].source: {share.source} is the rootfs's block "
                               "device too: a guest mounts a device once")
        if seen is None:
            seen = GuestDisk(block, disk_serial(request.id, int(index)), True)
        disks[block.rdev] = dataclasses.replace(
            seen, readonly=seen.readonly and share.readonly,
            mount_indexes=(*seen.mount_indexes, int(index)))
        binds.remove(share)
        del mounts[index]
    return list(disks.values())


def plan_container(request: ContainerRequest, join: dict[str, str] | None = None, *,
                   block_devices: bool = False, images: Path | None = None) -> ContainerPlan:
    """Plan ``request``; ``join`` maps namespace types to the guest paths a pod member joins;
    with ``block_devices`` a rootfs or bind source that is a block device's whole file
    system becomes a disk; a rootfs image from the cache ``images`` (:mod:`.imagedisk`) is
    one too."""
    spec, netns = guest_spec(request.spec, join, bundle=request.bundle)
    binds, mounts = bind_shares(request.id, spec)
    readonly = bool(spec["root"].get("readonly")) or request.overlay
    image = imagedisk.from_spec(request.spec, images, request.overlay) if images else None
    disks = _block_disks(request, readonly, binds, mounts, image is not None) \
        if block_devices else []
    if image is not None:
        disks.insert(0, GuestDisk(image, disk_serial(request.id), True))
    shares = binds
    if not request.rootfs_mounts and not any(not d.mount_indexes for d in disks):
        shares = [Share(request.rootfs, rootfs_target(request.id), readonly, field="root.path",
                        exact=True), *binds]
    plan = ContainerPlan(id=request.id, spec=spec, netns=netns, shares=shares, mounts=mounts,
                         rootfs_mounts=list(request.rootfs_mounts), disks=tuple(disks))
    check_guest_request(verbs.CREATE_CONTAINER, create_params(request, plan, LARGEST_STDIO),
                        "config.json")
    return plan


# --- what crosses to the guest ---------------------------------------------------------------

#: The ``stdio`` parameter at its largest (stream ids are u32): what a request is
#: sized with before its streams exist.
LARGEST_STDIO: dict[str, Any] = {"terminal": False, "stdin": 0xFFFF_FFFF,
                                 "stdout": 0xFFFF_FFFF, "stderr": 0xFFFF_FFFF}

#: An exec id at least as long as any front door's (the CLI's are 16 characters,
#: containerd's at most 76), for sizing an exec before its id is chosen.
LONGEST_EXEC_ID = "x" * 80

#: A terminal's size at its largest, as ``exec`` adds it to a process once it knows it.
LARGEST_CONSOLE = {"height": 0xFFFF, "width": 0xFFFF}


def create_params(request: ContainerRequest, plan: ContainerPlan,
                  stdio: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``create_container`` for a planned container."""
    rootfs: dict[str, Any] = {"path": plan.rootfs_target, "overlay": request.overlay}
    if (root := plan.rootfs_disk) is not None:
        rootfs["disk"] = root.to_agent()
    params = {"id": request.id, "spec": plan.spec, "stdio": stdio, "mounts": plan.mounts,
              "rootfs": rootfs}
    volumes = {str(i): d.to_agent() for d in plan.disks for i in d.mount_indexes}
    if volumes:
        params["disks"] = volumes
    return params


def exec_params(container_id: str, exec_id: str, process: dict[str, Any],
                stdio: dict[str, Any]) -> dict[str, Any]:
    """The parameters of ``exec_process`` for a checked process."""
    return {"id": container_id, "exec_id": exec_id, "process": process, "stdio": stdio}


def file_params(container_id: str, exec_id: str, op: str, path: str, mode: int
                ) -> dict[str, Any]:
    """The parameters of ``file_transfer``, checked as the guest will check them."""
    if not path.startswith("/") or "\0" in path:
        raise ConfigError(f"path {path!r}: expected an absolute path in the sandbox")
    params = {"id": container_id, "exec_id": exec_id, "op": op, "path": path, "mode": mode}
    check_guest_request(verbs.FILE_TRANSFER, dict(params, stdio=LARGEST_STDIO), "path")
    return params


def check_exec(container_id: str, process: object, what: str = "exec process",
               exec_id: str = LONGEST_EXEC_ID) -> dict[str, Any]:
    """Validate an exec's process and check that its request can be sent; return it checked.

    ``what`` names the input in messages ("--process FILE"). The size is taken
    with the largest stdio, console size and (unless given) exec id, so a check
    made before those are known still holds once they are.
    """
    checked = validate_process(process)
    sized = dict(checked, consoleSize=LARGEST_CONSOLE) if checked.get("terminal") else checked
    check_guest_request(verbs.EXEC_PROCESS,
                        exec_params(container_id, exec_id, sized, LARGEST_STDIO), what)
    return checked


def check_guest_request(verb: Verb, params: dict[str, Any], what: str) -> int:
    """Refuse a request the agent could not receive; return its payload size in bytes.

    The shape is the verb's declaration (the agent checks it again); the size is
    the payload of the REQUEST frame (``{"method", "params"}`` as ``Request.encode``
    writes it), which may not exceed the protocol's ``MAX_PAYLOAD``. Anything that
    cannot be encoded (validation refuses it first) is refused here too, in one
    short line: a frame that fails at encoding would fail after the VM booted.
    """
    try:
        verb.check(params)
        size = len(dumps({"method": verb.name, "params": params}).encode())
    except InvalidParams as exc:
        raise ConfigError(f"{what}: cannot be sent to the guest: {_short(exc)}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConfigError(f"{what}: cannot be sent to the guest: {type(exc).__name__}: "
                          f"{_short(exc)}") from None
    if size > MAX_PAYLOAD:
        raise ConfigError(f"{what}: too large for the guest: the {verb.name} request is {size} "
                          f"bytes, over the {MAX_PAYLOAD >> 20} MiB ({MAX_PAYLOAD} bytes) limit "
                          "of one message to the agent")
    return size


def _short(exc: BaseException) -> str:
    """An exception's text, capped: some (UnicodeEncodeError) quote the whole input."""
    text = " ".join(str(exc).split()).encode("ascii", "backslashreplace").decode()
    return text if len(text) <= 100 else text[:97] + "..."


def pod_namespaces(first_guest_pid: int) -> dict[str, str]:
    """The guest namespaces a pod member joins: its sandbox container's ipc, uts and pid."""
    if not first_guest_pid:
        raise SandboxError("a pod container was created before its sandbox container")
    return {kind: f"/proc/{first_guest_pid}/ns/{kind}" for kind in ("ipc", "uts", "pid")}


def vm_size_for(spec: dict[str, Any], shape: VMShape) -> tuple[int, int]:
    """(memory MiB, vCPUs) of a VM for a container with ``spec``'s limits."""
    return vm_size(spec, default_memory_mib=shape.default_memory_mib,
                   default_vcpus=shape.default_vcpus, memory_margin_mib=shape.memory_margin_mib,
                   max_vcpus=shape.max_vcpus)
