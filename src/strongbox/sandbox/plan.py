"""Plan turns one container request into what the sandbox does for it: spec, shares, rootfs, size.

Pure logic, the same for both front doors: the CLI's monitor and the shim
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

and ``vm_size_for`` sizes the VM from the first container's limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strongbox.hypervisor.base import VMShape
from strongbox.oci.sizing import vm_size
from strongbox.sandbox.guestspec import guest_spec
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


@dataclass(frozen=True)
class ContainerPlan:
    """What the sandbox must do for one :class:`ContainerRequest`."""

    id: str
    #: The spec the agent gets.
    spec: dict[str, Any]
    #: The host network namespace named by the spec (the VMM runs in the first one's).
    netns: str | None
    #: Host paths to export, at ``<id>/rootfs`` and ``<id>/mounts/<n>``.
    shares: list[Share]
    #: The agent's map of spec mount index -> path in the export.
    mounts: dict[str, str]
    #: containerd's rootfs mounts, to mount at ``<id>/rootfs`` (else ``shares`` has it).
    rootfs_mounts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rootfs_target(self) -> str:
        return rootfs_target(self.id)


def rootfs_target(container_id: str) -> str:
    """Where a container's root filesystem is in the export (the agent's layout)."""
    return f"{container_id}/rootfs"


def plan_container(request: ContainerRequest, join: dict[str, str] | None = None
                   ) -> ContainerPlan:
    """Plan ``request``; ``join`` maps namespace types to the guest paths a pod member joins."""
    spec, netns = guest_spec(request.spec, join)
    binds, mounts = bind_shares(request.id, spec)
    shares = binds
    if not request.rootfs_mounts:
        readonly = bool(spec["root"].get("readonly")) or request.overlay
        shares = [Share(request.rootfs, rootfs_target(request.id), readonly), *binds]
    return ContainerPlan(id=request.id, spec=spec, netns=netns, shares=shares, mounts=mounts,
                         rootfs_mounts=list(request.rootfs_mounts))


def vm_size_for(spec: dict[str, Any], shape: VMShape) -> tuple[int, int]:
    """(memory MiB, vCPUs) of a VM for a container with ``spec``'s limits."""
    return vm_size(spec, default_memory_mib=shape.default_memory_mib,
                   default_vcpus=shape.default_vcpus, memory_margin_mib=shape.memory_margin_mib,
                   max_vcpus=shape.max_vcpus)
