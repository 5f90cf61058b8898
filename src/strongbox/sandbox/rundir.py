"""RunDir is the directory of one running VM's host-side files, and its cleanup.

Layout: ``<root>/vms/<name>/`` holding ``owner.lock``, ``qemu.pid``,
``console.log`` and ``qemu.log``. The process that owns the VM holds an
exclusive ``flock`` on ``owner.lock`` for the VM's whole life; the kernel
drops it when that process dies, however it dies. So "the lock can be
taken" means "the owner is gone", with no pid-reuse races, and any later
strongbox command can remove what a killed owner left: the QEMU process (if
it somehow survived its parent-death signal), the directory, the cgroup
of a jailed QEMU (:func:`strongbox.hypervisor.jailer.remove_leftovers`), the
host cgroup its spec named (:func:`.hostcgroup.recorded`) and the block devices
it took from the host, mounted back (:func:`.blockroot.release`; only from the
mount namespace they were taken from: elsewhere the directory counts as live).

Race-free by construction, whatever runs at the same time:

* creating: the directory is built as ``vms/.~new-<random>`` (``~`` is in no
  VM name); its lock file is made under a temporary name, locked, and only
  then renamed to ``owner.lock``, so a building directory's ``owner.lock``
  is always held while its creator lives. The whole directory is then
  renamed to ``<name>``: rename(2) refuses to replace a non-empty directory,
  so two creators of one name cannot both win, and ``<name>`` appears
  already locked.
* collecting: a directory is removed only by whoever *holds* its lock,
  checked to be the ``owner.lock`` still in it; a directory keeps that file
  until the rest of it is gone, so no new owner can rename itself into the
  name being removed. A building directory counts as live unless its lock
  is free, or it has no lock yet and is older than :data:`ABANDONED_AFTER`.
  A named directory without ``owner.lock`` is a removal under way (or a
  relic): it is finished off.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import shutil
import signal
import time
from pathlib import Path

from strongbox.errors import StateDirError
from strongbox.hypervisor import remove_leftovers, vmm_processes
from strongbox.sandbox import blockroot, hostcgroup
from strongbox.sandbox.network import slots

log = logging.getLogger("strongbox.sandbox")
LOCK = "owner.lock"
#: A run directory under construction; ``~`` never appears in a VM's name.
BUILDING_PREFIX = ".~new-"
#: The lock file before it is locked: never taken for a free ``owner.lock``.
_NEW_LOCK = ".owner.lock.new"
#: A building directory with no lock after this long was left by a creator that died.
ABANDONED_AFTER = 60.0


def _vms(root: Path) -> Path:
    return root / "vms"


class RunDir:
    """A VM's run directory, locked by this process until :meth:`remove`."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd

    @classmethod
    def create(cls, root: Path, name: str) -> RunDir:
        base = _vms(root)
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirError(f"run directory {root}: cannot create ({exc.strerror})") from exc
        collect_stale(root)
        path = base / name
        building = base / f"{BUILDING_PREFIX}{secrets.token_hex(8)}"
        fd = -1
        try:
            fd = _build_locked(building)
            os.rename(building, path)
        except OSError as exc:
            _dismantle(building)
            if fd >= 0:
                os.close(fd)
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise StateDirError(f"{name} already exists (run directory {path})") from None
            raise StateDirError(f"run directory {root}: cannot write ({exc.strerror})") from exc
        return cls(path, fd)

    def remove(self) -> None:
        """Remove the directory; the lock is held (and the name ours) until it is gone."""
        if self._lock_fd >= 0:
            _dismantle(self.path)
            os.close(self._lock_fd)
            self._lock_fd = -1


def _build_locked(building: Path) -> int:
    """Make ``building`` with a held ``owner.lock`` in it; the lock's fd."""
    building.mkdir(mode=0o700)
    fd = os.open(building / _NEW_LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file only we know of: never busy
        os.rename(building / _NEW_LOCK, building / LOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _dismantle(path: Path) -> None:
    """Remove ``path``, ``owner.lock`` last, and the directory only if it is still empty.

    Keeping the lock file to the end keeps the directory non-empty, so a new
    owner cannot rename itself into the name until nothing of the old is left;
    if one did at the very end, the final rmdir fails and its directory stays.
    """
    try:
        entries = list(path.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
    with contextlib.suppress(OSError):
        (path / LOCK).unlink()
    with contextlib.suppress(OSError):
        path.rmdir()


def _lock_if_dead(path: Path) -> int | None:
    """The fd of ``path``'s owner.lock, now held by us, if its owner is gone; else None.

    Holding it is what makes removing the directory safe: no one else can
    decide it is dead, and the inode check proves it is still that directory's.
    """
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino == os.stat(path / LOCK).st_ino:
            return fd
    except OSError:  # BlockingIOError: alive; FileNotFoundError: being removed by another
        pass
    os.close(fd)
    return None


def _claim(path: Path) -> int | None:
    """Hold ``path``'s lock if nobody lives behind it (then it is ours to remove); else None.

    A directory with no lock file gets one, made exclusively and locked by us:
    a building directory only once it is old enough to be abandoned, a named
    one at once (it is a relic, or a removal under way that we finish).
    """
    fd = _lock_if_dead(path)
    if fd is not None or os.path.lexists(path / LOCK):
        return fd
    if path.name.startswith(BUILDING_PREFIX) and not _older_than(path, ABANDONED_AFTER):
        return None
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return _lock_if_dead(path)  # a lock appeared meanwhile: judge that one
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.lstat().st_mtime > seconds
    except OSError:
        return False


def _kill_leftover_qemu(path: Path) -> bool:
    """True if a QEMU was still running (and has been sent SIGKILL). Found by its VM name,
    not ``qemu.pid``: an owner in a pid namespace of its own wrote its own number there."""
    pid = vmm_processes([path]).get(path)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except ProcessLookupError:
        return False


def _reap(path: Path) -> bool:
    """Remove a dead owner's VM (its QEMU, directory, jail, host cgroups and tc redirects);
    False if it lives."""
    fd = _claim(path)
    if fd is None:
        return not path.is_dir()
    try:
        killed = _kill_leftover_qemu(path)
        if blockroot.release(path):  # not from this mount namespace: left for the host's
            return False
        cgroup = hostcgroup.recorded(path)
        slots.reap(path)  # our redirects on the engine's veths (the taps died with QEMU)
        _dismantle(path)
    finally:
        os.close(fd)
    if not path.name.startswith(BUILDING_PREFIX):  # a jail exists only once named
        remove_leftovers(path.name, wait=2.0 if killed else 0.5)
    if cgroup is not None:
        cgroup.remove(wait=2.0 if killed else 0.5)
    return True


def run_dirs(root: Path) -> list[Path]:
    """Every VM run directory under ``root``, live or not (building ones too)."""
    try:
        return sorted(p for p in _vms(root).iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def owner_gone(path: Path) -> bool:
    """Whether nobody lives behind ``path`` (the lock is taken and let go at once): what
    :func:`collect` would remove now, for a report that removes nothing."""
    if not os.path.lexists(path / LOCK):
        return not path.name.startswith(BUILDING_PREFIX) or _older_than(path, ABANDONED_AFTER)
    fd = _lock_if_dead(path)
    if fd is None:
        return False
    os.close(fd)
    return True


def owner_pid(root: Path, name: str) -> int | None:
    """The pid holding ``name``'s owner.lock (from /proc/locks), if anyone holds it.

    For a forced delete whose container lost every other trace of its monitor.
    """
    try:
        info = os.stat(_vms(root) / name / LOCK)
        locks = Path("/proc/locks").read_text()
    except OSError:
        return None
    key = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in locks.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == key:
            with contextlib.suppress(ValueError):
                return int(fields[4])
    return None


def collect(root: Path, name: str, wait: float = 5.0) -> bool:
    """Remove one VM's run directory once its owner is gone (waiting up to ``wait`` s).

    A dying owner closes its sockets before the kernel drops its lock, so a
    cleanup triggered by the disconnect may look too early: give it a moment.
    """
    path = _vms(root) / name
    deadline = time.monotonic() + wait
    while path.is_dir() and not _reap(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def collect_stale(root: Path) -> list[str]:
    """Remove the run directories (and QEMU processes) of owners that died."""
    removed: list[str] = []
    try:
        entries = list(_vms(root).iterdir())
    except OSError:
        return removed
    for path in entries:
        if not path.is_dir() or path.is_symlink() or not _reap(path):
            continue
        log.debug("removed stale VM directory %s", path)
        removed.append(path.name)
    return removed
