"""Boot starts a sandbox's VM: cloned from the factory's template when one fits, else cold.

Either way the VM gets a run directory of its own (locked by this process for
the VM's life, :mod:`.rundir`), the 9p export ``<run dir>/shared`` with the
first container's shares bound in the VMM's own mount namespace before it
execs (:mod:`.shares`), and, when the spec names one, the host network
namespace the VMM runs in. A clone wakes up as its template: the agent is
then told its own hostname, the wall clock and fresh entropy.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongbox.config import Config
from strongbox.errors import StrongboxError
from strongbox.hypervisor.base import VMM, DiskSpec
from strongbox.protocol import verbs
from strongbox.sandbox import blockroot, debugconsole
from strongbox.sandbox.factory import Factory
from strongbox.sandbox.hostcgroup import HostCgroup
from strongbox.sandbox.imagedisk import ImageFile
from strongbox.sandbox.netns import join_netns, netns_of
from strongbox.sandbox.netsync import NetworkSync, sync_network
from strongbox.sandbox.network.egress import Egress
from strongbox.sandbox.network.slots import SandboxNetwork
from strongbox.sandbox.ownersocket import OwnerSocket, report
from strongbox.sandbox.plan import GuestDisk
from strongbox.sandbox.pool.take import Adoption, claim, pool_key
from strongbox.sandbox.rundir import RunDir
from strongbox.sandbox.shares import (
    SHARE_TAG,
    Share,
    bind_in_new_namespace,
    open_share,
    prepare_targets,
)
from strongbox.sandbox.vm import GuestVM
from strongbox.timeline import Timeline

if TYPE_CHECKING:
    from strongbox.sandbox.sandbox import Sandbox

log = logging.getLogger("strongbox.sandbox")


@dataclass
class Booted:
    """A VM with a ready agent, and where its host-side files are."""

    vm: GuestVM
    run_dir: RunDir
    #: True when cloned from a template rather than booted.
    cloned: bool
    #: The sandbox's network namespace and NIC slots.
    network: SandboxNetwork
    #: The host cgroup the owner and QEMU are in (the spec's ``linux.cgroupsPath``).
    cgroup: HostCgroup | None = None
    #: A pooled VM's export (in its keeper's run directory); else ``<run dir>/shared``.
    export_dir: Path | None = None
    #: The pooled VM's name when the VM came from the warm pool (its shares are then
    #: attached after the hand-over, as a pod member's are).
    pooled: str = ""
    #: Runs host programs in the host's mount namespace (the monitor has its own).
    enter_host: Callable[[], None] | None = None
    #: The serials of the disks attached at boot (none where disks are hot-plugged).
    boot_disks: frozenset[str] = frozenset()
    #: Keeps the guest's NICs matching the namespace from now on (:mod:`.netsync`).
    netsync: NetworkSync = field(init=False)

    #: Where host tools ask for the guest's view (:mod:`.ownersocket`), once served.
    owner: OwnerSocket | None = None

    def __post_init__(self) -> None:
        self.netsync = NetworkSync(self.vm, self.network)

    async def serve(self, sandbox: Sandbox) -> None:
        """Answer host tools about ``sandbox`` (``strongbox metrics``, ``debug console``)."""
        self.owner = OwnerSocket(functools.partial(report, sandbox), self.run_dir.path,
                                 functools.partial(debugconsole.serve, sandbox))
        await self.owner.start()

    def release(self) -> None:
        """After the VM is gone: its taps and redirects, the host cgroup (the owner leaves
        it first), the block devices it took (mounted back) and the run directory."""
        self.netsync.close()
        if self.owner is not None:
            self.owner.close()
        _release(self.network, self.cgroup, self.run_dir, self.enter_host)

    @property
    def export(self) -> Path:
        return self.export_dir or self.run_dir.path / "shared"


def _release(network: SandboxNetwork | None, cgroup: HostCgroup | None, run_dir: RunDir,
             enter_host: Callable[[], None] | None = None) -> None:
    try:
        if network is not None:
            network.close()
    finally:
        if cgroup is not None:
            cgroup.remove()
        failed = blockroot.release(run_dir.path, enter_host)
        if failed:  # its record stays: the run directory with it, for a later reaper
            log.warning("sandbox %s: could not mount %s back", run_dir.path.name,
                        ", ".join(failed))
        else:
            run_dir.remove()


def _vmm_child_setup(export: Path, trees: list[tuple[int, str]], network: SandboxNetwork
                     ) -> None:
    """Runs in the VMM's process before exec: its network and mount namespaces."""
    network.enter()
    bind_in_new_namespace(export, trees)


def _close_disks(taken: list[DiskSpec]) -> None:
    while taken:
        os.close(taken.pop().fd)


async def as_clone(vm: GuestVM, network: SandboxNetwork, name: str) -> None:
    """A VM that woke as a template (a clone, a pooled VM): its own hostname, clock and
    entropy; its NIC slots are as the template left them (hidden)."""
    network.mark_applied(network.hidden())
    await vm.call(verbs.CLONE_IDENTITY, {
        "hostname": name[:64], "time_ns": time.time_ns(),
        "entropy": base64.b64encode(os.urandom(64)).decode(),
    })


async def _from_pool(config: Config, vmm: VMM, claim_sock: socket.socket, *, name: str,
                     root: Path, netns: str | None, cgroup: HostCgroup | None,
                     owner_joins_netns: bool, timeout: float, steps: Timeline,
                     egress: Egress | None) -> Booted:
    """Adopt a claimed pooled VM (:mod:`.pool.take`); nothing is left on failure."""
    run_dir = RunDir.create(root, name)
    step = Adoption(claim_sock, run_dir)
    try:
        vm = await step.take(config, vmm, name=name, netns=netns, cgroup=cgroup,
                             owner_joins_netns=owner_joins_netns, timeout=timeout)
        steps.lap("pool hand-over", f"VM {step.vm_name}, agent ready")
        assert step.network is not None
        step.network.egress = egress
        await as_clone(vm, step.network, name)
        steps.lap("clone identity")
        await sync_network(vm, step.network)
        steps.lap("network")
    except BaseException:
        await step.undo()
        _release(step.network, cgroup, run_dir)
        raise
    return Booted(vm, run_dir, True, step.network, cgroup, export_dir=step.export,
                  pooled=step.vm_name)


async def _pooled(config: Config, vmm: VMM, *, name: str, memory_mib: int, vcpus: int,
                  steps: Timeline, **adopt: Any) -> tuple[Booted | None, str]:
    """A VM from the warm pool, or None and why not (the start goes on without it)."""
    got = await claim(config, name, pool_key(config, vmm, memory_mib, vcpus))
    if isinstance(got, str):
        return None, got
    try:
        return await _from_pool(config, vmm, got, name=name, steps=steps, **adopt), ""
    except (StrongboxError, OSError) as exc:
        log.warning("sandbox %s: the pooled VM failed its hand-over (%s); starting without "
                    "the pool", name, exc)
        return None, f"hand-over failed: {exc}"


async def boot(config: Config, vmm: VMM, *, name: str, root: Path, state_dir: Path,
               memory_mib: int, vcpus: int, shares: list[Share], netns: str | None,
               cgroup: HostCgroup | None = None, owner_joins_netns: bool = False,
               timeout: float | None = None, pool: bool = True, disks: Sequence[GuestDisk] = (),
               hotplug: bool = False, enter_host: Callable[[], None] | None = None,
               egress: Egress | None = None) -> Booted:
    """Start the VM with ``shares`` exported and wait for its agent; nothing is left on failure.

    With ``[factory] vm_cache_number`` (and ``pool``) a free VM of the warm pool comes
    first: it is running already and ``shares`` are the caller's to attach (``pooled``).
    With a host ``cgroup`` the owner (this process) joins it first, recorded in the run
    directory beforehand, and QEMU inherits it. With ``owner_joins_netns`` the owner joins
    QEMU's network namespace once it runs (it is the pid its container reports).
    ``disks`` (block-device file systems: a rootfs, volumes) keep the pool out (a pooled
    VM's QMP is its keeper's); without ``hotplug`` they are taken from the host here
    (``enter_host`` runs mount(8) where the host's mounts are) and attached at boot, so the
    VM boots cold; with it the caller hot-plugs them into the VM, a clone too. ``egress``
    limits where the guest may send from the first interface on (:mod:`.network.egress`).
    """
    started = time.monotonic()
    steps = Timeline(name, started)
    wait = timeout or config.agent.dial_timeout
    why_not = "not for this VM" if config.factory.vm_cache_number else \
        "off ([factory] vm_cache_number = 0)"
    if disks:
        pool, why_not = False, "not with block-device file systems (their disks need QMP)"
    at_boot = list(disks) if not hotplug else []
    if config.factory.vm_cache_number and pool:
        booted, why_not = await _pooled(
            config, vmm, name=name, memory_mib=memory_mib, vcpus=vcpus, steps=steps,
            root=root, netns=netns, cgroup=cgroup, owner_joins_netns=owner_joins_netns,
            timeout=wait, egress=egress)
        if booted is not None:
            log.debug("sandbox %s: VM from the warm pool (%s) in %.3fs", name, booted.pooled,
                      time.monotonic() - started)
            return booted
    template = None
    if config.factory.enable_template and not at_boot:
        template = await Factory(config, state_dir, root).template_for(memory_mib, vcpus)
        steps.lap("template", "found" if template is not None else "none: cold boot")
    run_dir = RunDir.create(root, name)
    vm: GuestVM | None = None
    network: SandboxNetwork | None = None
    state_fd = None
    trees: list[tuple[int, str]] = []  # each share resolved once, before the fork
    taken: list[DiskSpec] = []  # the devices' descriptors: QEMU inherits them
    try:
        network = SandboxNetwork.open(config.network, sandbox_id=name, netns=netns,
                                      run_dir=run_dir.path)
        network.egress = egress
        if cgroup is not None:
            cgroup.record(run_dir.path)
            cgroup.create()
            cgroup.enter()
        export = run_dir.path / "shared"
        export.mkdir()
        prepare_targets(export, shares)
        for share in shares:
            trees.append((open_share(share), share.target))
        for disk in at_boot:
            fd = disk.mount.open() if isinstance(disk.mount, ImageFile) else blockroot.take(
                disk.mount, disk.field, run_dir.path, readonly=disk.readonly,
                enter_host=enter_host)
            taken.append(DiskSpec(fd, disk.serial, disk.readonly))
        devices: dict[str, object] = {"share_dir": export, "share_tag": SHARE_TAG,
                                      "nics": network.nics(), "disks": tuple(taken)}
        if template is not None:
            state_fd = os.open(template.state_file, os.O_RDONLY | os.O_CLOEXEC)
            devices.update(memory_file=template.memory_file, state_fd=state_fd, incoming=True)
        spec = vmm.vm_spec(name=name, run_dir=run_dir.path, memory_mib=memory_mib, vcpus=vcpus,
                           host_cgroup=cgroup is not None, **devices)
        vm = GuestVM(vmm.new_vm(spec, functools.partial(_vmm_child_setup, export, trees,
                                                         network)),
                     request_timeout=config.agent.request_timeout)
        steps.lap("prepare", f"run directory, network namespace, {len(shares)} shares")
        await vm.boot(wait)
        steps.lap("qemu ready", "QMP connected", at=vm.vmm.qmp_ready_at)
        steps.lap("vm running", "device state loaded" if template is not None else "",
                  at=vm.vmm.running_at)
        steps.lap("agent ready", "", at=vm.ready_at)
        network.handed_over()
        if cgroup is not None:
            cgroup.settle(vm.vmm.vmm_pid)
        if owner_joins_netns:
            join_netns(netns_of(vm.vmm.vmm_pid))
        if template is not None:
            await as_clone(vm, network, name)
        steps.lap("owner settled" if template is None else "clone identity")
        await sync_network(vm, network)
        steps.lap("network")
    except BaseException:
        if vm is not None:
            await vm.destroy()
        _close_disks(taken)  # our descriptors hold the devices too: before they go back
        _release(network, cgroup, run_dir, enter_host)
        raise
    finally:
        if state_fd is not None:
            os.close(state_fd)
        _close_disks(taken)
        for tree, _ in trees:
            os.close(tree)
    log.debug("sandbox %s: %s in %.3fs (%d MiB, %d vCPU, %s; warm pool: %s)", name,
              "cloned" if template is not None else "booted", time.monotonic() - started,
              memory_mib, vcpus, vmm.accelerator().name, why_not)
    return Booted(vm, run_dir, template is not None, network, cgroup, enter_host=enter_host,
                  boot_disks=frozenset(d.serial for d in at_boot))
