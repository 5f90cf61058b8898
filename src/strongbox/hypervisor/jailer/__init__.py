"""Jailer confines a VMM process: chroot, namespaces, an unprivileged uid, seccomp, cgroups.

The security layer around QEMU, in the spirit of Firecracker's jailer and
StratoVirt's ozone, and the only code that knows how confinement is done.
A jailed QEMU runs

* chrooted in ``<run dir>/jail``, which holds only what it needs, each
  host path at its own absolute path (:mod:`.layout`), read-only except the
  9p export and the writable paths it was given;
* in new mount, pid, ipc and uts namespaces, as PID 1 of its pid namespace,
  under a small *waiter* process that mirrors its exit status;
* as a per-sandbox uid/gid with only the capabilities 9p passthrough needs,
  as ambient capabilities, and only /dev/kvm's group (:mod:`.identity`);
* under QEMU's own seccomp filter, which the driver turns on for every
  VMM, jailed or not (:data:`strongbox.hypervisor.qemu.cmdline.SECCOMP`);
* in a cgroup capping its memory and tasks (:mod:`.cgroups`);
* with no descriptor but those it is given, and an empty environment.

Use (the driver does, :mod:`strongbox.hypervisor.qemu.driver`)::

    jail = Jail.prepare(run_dir, sandbox_id, memory_mib=..., expose=[...], kvm=...)
    spawn(argv, env=jail.env, preexec_fn=...jail.child_setup...)   # after the caller's setup
    qemu_pid = jail.vmm_pid(spawned.pid)      # the real QEMU, for setns and signals
    ...                                         # once the spawned waiter is reaped:
    jail.cleanup()                              # True once the cgroup is gone

On disk: ``<run dir>/jail/`` (empty mount points and symlinks only; removed
with the run directory) and ``strongbox/<sandbox id>`` under each cgroup
hierarchy, removed by :meth:`Jail.cleanup` or, after a crash, by
:func:`remove_leftovers` (the run directory's stale cleanup).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from strongbox.errors import HypervisorError
from strongbox.hypervisor.jailer import confine
from strongbox.hypervisor.jailer.cgroups import Cgroup, memory_limit_bytes, remove_leftovers
from strongbox.hypervisor.jailer.identity import (
    Identity,
    capabilities_to_drop,
    read_last_cap,
)
from strongbox.hypervisor.jailer.layout import Bind, plan

KVM_DEVICE = "/dev/kvm"
#: What QEMU itself needs besides the paths on its command line (those that exist).
RUNTIME_PATHS = (
    "/lib64/ld-linux-x86-64.so.2",  # the dynamic loader its ELF header names
    "/lib/x86_64-linux-gnu",        # shared libraries, and QEMU's modules (accel-tcg ...)
    "/usr/lib/x86_64-linux-gnu",
    "/usr/share/qemu",              # firmware: microvm loads bios-microvm.bin, q35 pvh.bin
    "/dev/null",
    "/dev/urandom",                 # the virtio-rng backend
)


@dataclass(frozen=True)
class JailPolicy:
    """The operator's knobs (``[hypervisor.qemu] jailer_*``)."""

    uid_base: int = 100000
    pids_max: int = 128
    #: MiB allowed beyond guest RAM: QEMU itself and the TCG translation cache.
    memory_overhead_mib: int = 384


class Jail:
    """One VMM's jail, prepared on the host; :meth:`child_setup` runs in the VMM's child."""

    def __init__(self, root: Path, sandbox_id: str, identity: Identity, binds: list[Bind],
                 cgroup: Cgroup | None, drop: list[int]) -> None:
        self.root = root
        self.sandbox_id = sandbox_id
        self.identity = identity
        self.binds = binds
        self.cgroup = cgroup
        self._drop = drop
        #: QEMU's whole environment.
        self.env: dict[str, str] = {}

    @classmethod
    def prepare(cls, run_dir: Path, sandbox_id: str, *, memory_mib: int,
                expose: Sequence[tuple[str, bool]], kvm: bool,
                policy: JailPolicy | None = None, own_cgroup: bool = True) -> Jail:
        """Lay out ``<run_dir>/jail`` and create the cgroup, before QEMU is spawned.

        ``expose`` lists the host paths on QEMU's command line as (path,
        writable); they appear in the jail at the same paths. A writable
        path that does not exist yet is created as an empty file owned by
        the jail's uid (a memory file QEMU will size). Without ``own_cgroup`` QEMU stays in
        the cgroup it inherits (the host cgroup its spec names, which caps it).
        """
        policy = policy or JailPolicy()
        kvm_device = KVM_DEVICE if kvm else None
        try:
            identity = Identity.for_sandbox(sandbox_id, policy.uid_base, kvm_device)
            drop = capabilities_to_drop(identity.capabilities, read_last_cap())
            root = run_dir / "jail"
            root.mkdir(mode=0o755)
            wanted = [(p, False) for p in RUNTIME_PATHS if os.path.exists(p)]
            if kvm_device is not None:
                wanted.append((kvm_device, False))
            for path, writable in expose:
                if writable and not os.path.exists(path):
                    _create_owned(path, identity)
                wanted.append((path, writable))
            binds = plan(root, wanted)
            (root / "proc").mkdir(mode=0o555)
        except OSError as exc:
            raise HypervisorError(f"jailer: preparing {run_dir / 'jail'}: "
                                  f"{exc.strerror}") from exc
        cgroup = Cgroup.create(sandbox_id, pids_max=policy.pids_max,
                               memory_bytes=memory_limit_bytes(memory_mib,
                                                               policy.memory_overhead_mib)
                               ) if own_cgroup else None
        return cls(root, sandbox_id, identity, binds, cgroup, drop)

    def child_setup(self) -> None:
        """In the VMM's child, after the caller's own setup: lock it in (see :mod:`.confine`).

        Returns only in the grandchild that is to exec QEMU.
        """
        confine.enter(self.root, self.binds, self.cgroup, self.identity, self._drop)

    @staticmethod
    def vmm_pid(spawned_pid: int) -> int:
        """The real QEMU: the only child of the waiter the driver spawned."""
        try:
            children = Path(f"/proc/{spawned_pid}/task/{spawned_pid}/children").read_text()
        except OSError:
            children = ""
        pids = [int(p) for p in children.split()]
        if not pids:
            raise HypervisorError(f"jailer: the VMM under waiter {spawned_pid} is gone")
        return pids[0]

    def cleanup(self) -> bool:
        """Remove the cgroup once QEMU is gone; False while it still has tasks (retry)."""
        return self.cgroup is None or self.cgroup.remove()


def _create_owned(path: str, identity: Identity) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchown(fd, identity.uid, identity.gid)
    finally:
        os.close(fd)


__all__ = ["Jail", "JailPolicy", "remove_leftovers"]
