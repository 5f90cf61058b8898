"""Confine runs in the VMM's process between fork and exec and locks it in its jail.

The steps, in the order the privileges they need allow:

1. join the jail's cgroup (while /sys is still in view);
2. a mount namespace of its own, a slave of the caller's (nested in the
   sandbox's if it made one); the jail's root bound onto itself; every
   exposed path bound at its own path inside, then, with every mount below
   it, made nosuid and nodev (QEMU never opens a device node of a share: a
   node in a container image, or one it could create, is useless to it) and
   read-only, or noexec where it stays writable. Each exposed directory is
   first bound onto itself and made *shared*, so that a mount added under it
   later in QEMU's namespace (the next container of a pod, see
   :mod:`strongbox.sandbox.vmmounts`) appears in the jail too. Last, the
   jail's own root goes read-only: QEMU can create nothing but inside the
   writable paths it was given;
3. ``chroot`` into it (not pivot_root: helpers that later ``setns`` into
   QEMU's mount namespace must still see the host's paths);
4. new pid, ipc and uts namespaces, and a fork. The child becomes PID 1 of
   the new pid namespace and goes on to exec QEMU; the parent stays behind
   as the *waiter*: the process the driver spawned, which mirrors QEMU's exit
   status and whose death kills QEMU (the child sets PR_SET_PDEATHSIG anew:
   it does not survive fork). The waiter closes every descriptor it holds,
   or the spawning ``subprocess`` would wait forever for EOF on its error
   pipe, and a liveness pipe tells the child whether the waiter died before
   the parent-death signal was armed;
5. in the child: a /proc of its own pid namespace with ``subset=pid`` (9p's
   passthrough model reaches files through /proc/self/fd; the option hides
   every global file such as sysrq-trigger, which CAP_DAC_OVERRIDE would
   otherwise open), the bounding set cut, no_new_privs, groups, gid, uid,
   and the capabilities QEMU keeps raised as inheritable and ambient; then
   the parent-death signal, which must come after the uid change: changing
   the euid or egid clears it.

Then ``subprocess`` closes the remaining descriptors and execs QEMU, which
turns on its own seccomp filter (``-sandbox``).
"""

from __future__ import annotations

import os
import resource
import select
import signal
from pathlib import Path
from typing import NoReturn

from strongbox.container._syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_SET_KEEPCAPS,
    PR_SET_NO_NEW_PRIVS,
    capset,
    mount,
    prctl,
    unshare,
)
from strongbox.hypervisor.jailer.cgroups import Cgroup
from strongbox.hypervisor.jailer.identity import Identity
from strongbox.hypervisor.jailer.layout import Bind
from strongbox.mountapi import (
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    set_tree_flags,
)

PR_SET_PDEATHSIG = 1

#: Mount flags of each kind of bind, set on it and every mount below it.
_RO = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
_RW = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC
#: A device node still opens for writing on a read-only mount.
_DEVICE = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC
_JAIL_ROOT = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC


def bind_flags(bind: Bind) -> int:
    if bind.kind == "device":
        return _DEVICE
    return _RW if bind.writable else _RO


def build_tree(jail: Path, binds: list[Bind]) -> None:
    """Step 2: a private mount namespace with the exposed paths bound into ``jail``."""
    unshare(CLONE_NEWNS)
    mount("none", "/", None, MS_REC | MS_SLAVE)
    root = str(jail)
    mount(root, root, None, MS_BIND)
    for bind in binds:
        target = bind.target(jail)
        if bind.kind == "dir":
            mount(bind.source, bind.source, None, MS_BIND | MS_REC)
            mount("none", bind.source, None, MS_SHARED)
        mount(bind.source, target, None, MS_BIND | MS_REC)
        set_tree_flags(target, bind_flags(bind))
    mount("none", root, None, MS_BIND | MS_REMOUNT | _JAIL_ROOT)


def enter(jail: Path, binds: list[Bind], cgroup: Cgroup | None, identity: Identity,
          drop: list[int]) -> None:
    """Steps 1 to 5 (step 1 only with a cgroup of the jail's own). Returns only in the
    process that is to exec QEMU."""
    if cgroup is not None:
        cgroup.join(os.getpid())
    build_tree(jail, binds)
    os.chroot(jail)
    os.chdir("/")
    unshare(CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS)
    alive_r, alive_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child:
        _wait_and_mirror(child, keep=alive_w)
    os.close(alive_w)
    try:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid")
    except OSError as exc:
        raise OSError(exc.errno, "jailer: mounting /proc with subset=pid (Linux 5.8+): "
                                 f"{os.strerror(exc.errno or 0)}") from None
    become(identity, drop)
    # Only now: the kernel clears the parent-death signal when the euid or egid changes.
    prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if select.select([alive_r], [], [], 0)[0]:  # EOF: the waiter is gone already
        os._exit(1)
    os.close(alive_r)


def become(identity: Identity, drop: list[int]) -> None:
    """Step 5's credentials: bounding set, no_new_privs, groups, gid, uid, ambient caps."""
    for number in drop:
        prctl(PR_CAPBSET_DROP, number)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_KEEPCAPS, 1)  # setuid away from 0 would clear the permitted set
    os.setgroups(list(identity.groups))
    os.setresgid(identity.gid, identity.gid, identity.gid)
    os.setresuid(identity.uid, identity.uid, identity.uid)
    caps = identity.capabilities
    capset(caps, caps, caps)
    for number in range(caps.bit_length()):
        if caps >> number & 1:
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number)


def _wait_and_mirror(child: int, keep: int) -> NoReturn:
    """The waiter: hold nothing, reap QEMU, and end the way it ended."""
    status = 255
    try:
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        for sig in signal.valid_signals():  # no inherited Python handler keeps us alive
            if sig not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):
                try:
                    signal.signal(sig, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        _, wait_status = os.waitpid(child, 0)
        if os.WIFSIGNALED(wait_status):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # mirror a crash, not dump ours
            os.kill(os.getpid(), os.WTERMSIG(wait_status))
        status = os.waitstatus_to_exitcode(wait_status) & 0xFF
    finally:
        os._exit(status)
