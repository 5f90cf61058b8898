"""Base is what the sandbox layer may ask of a hypervisor: a VMM that makes VMs, and a VM.

``sandbox/`` depends on this module and on :func:`strongbox.hypervisor.open_vmm`
only; it never imports a driver. A driver is a folder under ``hypervisor/``
(``qemu/`` today: ``vmm.py`` implements :class:`VMM`, ``driver.py`` the
:class:`VM`, next to ``cmdline.py``, ``qmp.py``, ``accel.py`` and
``migration.py``). A second machine type or another VMM is a sibling with the
same files; nothing above this line changes.

What crosses the interface is plain data: a :class:`VMSpec` in (what to boot,
independent of the VMM), a running :class:`VM` out, a :class:`VMShape` saying
how to size guests a container says nothing about, and the
:class:`Accelerator` in use with the reason it was chosen.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

#: Runs in the VMM's process between fork and exec (its namespaces: mounts, network).
ChildSetup = Callable[[], None]


@dataclass(frozen=True)
class Accelerator:
    """The chosen accelerator and the reason, for logs and ``guest boot``."""

    name: str  # "kvm" or "tcg"
    reason: str


@dataclass(frozen=True)
class VMShape:
    """How guests are sized and equipped by default, from the VMM's configuration
    (:meth:`VMM.shape`)."""

    #: Guest RAM when the container sets no memory limit.
    default_memory_mib: int
    default_vcpus: int
    #: Added to a container's memory limit (guest kernel, agent, page cache).
    memory_margin_mib: int
    #: No guest gets more vCPUs than this (the host's CPUs).
    max_vcpus: int
    #: A rootfs that is a block device's file system goes to the guest as a disk.
    block_devices: bool = False
    #: Devices a running guest can take (q35's root ports; microvm takes none).
    hotplug_slots: int = 0


@dataclass(frozen=True)
class NicSpec:
    """One virtio-net NIC on a tap the VMM inherits: the guest sees ``mac`` as its permanent
    address, which is how the agent finds the NIC (a slot) again whatever it was renamed to."""

    tap_fd: int
    mac: str
    #: An open /dev/vhost-net for this NIC, or None: QEMU moves the frames itself.
    vhost_fd: int | None = None


#: Asks the guest to power off the hotplug slot below the root port at a PCI address (the
#: guest's view, "0000:00:10.0"), hastening its acknowledgement of an unplug.
Eject = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class DiskSpec:
    """One block device the VMM gets as an open descriptor (it never opens a host path):
    the guest finds it by ``serial``, the sandbox's name for it."""

    fd: int
    serial: str
    readonly: bool = False


@dataclass(frozen=True)
class VMSpec:
    """Everything needed to launch one guest, independent of the VMM."""

    name: str
    kernel: Path
    initrd: Path
    memory_mib: int
    vcpus: int
    #: Directory for the VM's files (console log, VMM log, pid file).
    run_dir: Path
    #: Extra kernel command-line parameters.
    kernel_params: tuple[str, ...] = ()
    #: Full kernel log on the console instead of ``quiet``.
    debug: bool = False
    #: Name of the virtio-serial port the agent listens on.
    agent_port: str = "strongbox.agent"
    #: Host directory exported to the guest over virtio-9p (tag ``share_tag``).
    share_dir: Path | None = None
    share_tag: str = "sbshare"
    #: Guest RAM in this file (a VM template's memory) instead of anonymous memory.
    memory_file: Path | None = None
    #: True: writes go to the file (creating a template); False: private
    #: copy-on-write mapping of it (a clone shares the template's pages).
    memory_shared: bool = False
    #: A device-state file the VMM inherits: read by a clone (``incoming``), written
    #: when saving a template.
    state_fd: int | None = None
    #: Start paused and load device state from ``state_fd`` (a clone of a template).
    incoming: bool = False
    #: The VMM stays in the host cgroup it inherits from its owner (the spec's
    #: ``linux.cgroupsPath``): a jail makes no cgroup of its own.
    host_cgroup: bool = False
    #: The NIC slots, in order (taps made by the sandbox in its network namespace).
    nics: tuple[NicSpec, ...] = ()
    #: Block devices present from boot (a cold-booted first container's rootfs).
    disks: tuple[DiskSpec, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def console_log(self) -> Path:
        return self.run_dir / "console.log"


def log_tail(path: Path, lines: int = 5) -> list[str]:
    """The last non-empty lines of a VM's log (its console, its VMM's stderr)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


async def exits_within(wait: Callable[[], Awaitable[int]], timeout: float) -> bool:
    """True when ``wait()`` (a VM's) returns within ``timeout``; the wait goes on either way
    (shielded: a VM's status is collected once, whoever asked first)."""
    try:
        await asyncio.wait_for(asyncio.shield(wait()), timeout)
        return True
    except TimeoutError:
        return False


class VM(Protocol):
    """One launched guest: a VMM process that must never outlive its owner.

    ``vmm_pid`` is the VMM process itself (what a task's pid is, and whose
    namespaces the sandbox enters); ``agent_socket`` the host end of the
    agent's channel once started. The times are ``time.monotonic()`` values.
    """

    spec: VMSpec
    accel: Accelerator
    vmm_pid: int
    agent_socket: socket.socket | None
    launched_at: float
    qmp_ready_at: float
    running_at: float
    returncode: int | None

    async def start(self, timeout: float = 10.0) -> None:
        """Launch the VMM and let the guest run (loading ``spec.state_fd`` if incoming)."""

    async def save_state(self, timeout: float = 60.0) -> None:
        """Pause the guest and write its device state to ``spec.state_fd`` (templates)."""

    async def stop(self, timeout: float = 5.0) -> int:
        """Ask the VMM to quit; kill it if it does not within ``timeout``. Its status."""
        ...

    def kill(self) -> None:
        """SIGKILL, now."""

    async def wait(self) -> int:
        """Its exit status, once it has exited (and its confinement is released)."""
        ...

    async def wait_exit(self, timeout: float) -> bool:
        """True when it exited within ``timeout``."""
        ...

    def console_tail(self, lines: int = 5) -> list[str]:
        """The guest console's last non-empty lines."""
        ...

    def namespace_fd(self) -> int:
        """A new pidfd of the VMM (the caller closes it), for setns(2) into its mount or
        network namespace: valid whichever pid namespace the caller is in."""
        ...

    def failure_reason(self) -> str:
        """The VMM's last complaint, for error messages."""
        ...

    async def add_disk(self, disk: DiskSpec, timeout: float = 10.0) -> None:
        """Hot-plug ``disk`` into the running guest (the VMM keeps its own descriptor); a
        VM that cannot (no hotplug, no free slot) raises HypervisorError saying why."""

    async def remove_disk(self, serial: str, timeout: float = 20.0,
                          eject: Eject | None = None) -> None:
        """Unplug a hot-plugged disk once the guest let it go (it acknowledges; ``eject``
        can hasten that)."""

    async def add_nic(self, nic: NicSpec, timeout: float = 10.0) -> None:
        """Hot-plug a NIC on ``nic``'s tap (the VMM keeps its own descriptor); like
        :meth:`add_disk`, HypervisorError saying why a VM cannot."""

    async def remove_nic(self, mac: str, timeout: float = 20.0,
                         eject: Eject | None = None) -> None:
        """Unplug the NIC :meth:`add_nic` plugged for slot MAC ``mac`` (the guest hid it
        first; it acknowledges); its tap goes with the VMM's descriptor."""

    async def close(self) -> None:
        """Release host-side handles (after the process is gone)."""


#: A :class:`Finding`'s status: fine; works, at a cost or with less; cannot run containers.
OK, WARNING, MISSING = "ok", "warning", "missing"


@dataclass(frozen=True)
class Finding:
    """One requirement of the host as ``strongbox check`` reports it, and why it stands so."""

    name: str
    status: str
    detail: str


class VMM(Protocol):
    """A hypervisor as configured: sizes guests, names its inputs, makes :class:`VM` objects."""

    name: str

    def host_checks(self) -> list[Finding]:
        """What this hypervisor needs of the host (its binary, the accelerator, firmware,
        the guest it boots), each as found here."""
        ...

    def shape(self) -> VMShape:
        """Default guest size and bounds."""
        ...

    def accelerator(self) -> Accelerator:
        """What guests run on here (hardware virtualisation or emulation), and why."""
        ...

    def vm_spec(self, *, name: str, run_dir: Path, memory_mib: int, vcpus: int,
                **devices: Any) -> VMSpec:
        """A spec with the configured guest (kernel, initrd, command line) and ``devices``
        (the optional :class:`VMSpec` fields: share_dir, memory_file, state_fd ...)."""
        ...

    def new_vm(self, spec: VMSpec, child_setup: ChildSetup | None = None) -> VM:
        """A VM for ``spec``, not started; ``child_setup`` runs in its process before exec."""
        ...

    def identity(self, memory_mib: int, vcpus: int) -> dict[str, Any]:
        """Everything a saved VM's contents depend on (a template is used only if equal)."""
        ...
