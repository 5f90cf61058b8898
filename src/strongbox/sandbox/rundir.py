"""RunDir is the directory of one running VM's host-side files, and its cleanup.

Layout: ``<root>/vms/<name>/`` holding ``owner.lock``, ``qemu.pid``,
``console.log`` and ``qemu.log``. The process that owns the VM holds an
exclusive ``flock`` on ``owner.lock`` for the VM's whole life; the kernel
drops it when that process dies, however it dies. So "the lock can be
taken" means "the owner is gone", with no pid-reuse races, and any later
strongbox command can remove what a killed owner left: the QEMU process (if
it somehow survived its parent-death signal), the directory, and the cgroup
of a jailed QEMU (:func:`strongbox.hypervisor.jailer.remove_leftovers`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import time
from pathlib import Path

from strongbox.errors import StateDirError
from strongbox.hypervisor import remove_leftovers

log = logging.getLogger("strongbox.sandbox")
LOCK = "owner.lock"


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
        try:
            path.mkdir(mode=0o700)
            fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            raise StateDirError(f"{name} already exists (run directory {path})") from None
        except OSError as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise StateDirError(f"run directory {root}: cannot write ({exc.strerror})") from exc
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return cls(path, fd)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _owner_alive(path: Path) -> bool:
    try:
        fd = os.open(path / LOCK, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # creation was interrupted before the lock existed
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _kill_leftover_qemu(path: Path) -> bool:
    """True if a QEMU was still running (and has been sent SIGKILL)."""
    try:
        pid = int((path / "qemu.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    if f"strongbox-{path.name}".encode() in cmdline:
        try:
            os.kill(pid, signal.SIGKILL)
            return True
        except ProcessLookupError:
            pass
    return False


def _remove(path: Path) -> None:
    """A dead owner's VM: its QEMU, its directory, its jail's cgroup."""
    killed = _kill_leftover_qemu(path)
    shutil.rmtree(path, ignore_errors=True)
    remove_leftovers(path.name, wait=2.0 if killed else 0.5)


def collect(root: Path, name: str, wait: float = 5.0) -> bool:
    """Remove one VM's run directory once its owner is gone (waiting up to ``wait`` s).

    A dying owner closes its sockets before the kernel drops its lock, so a
    cleanup triggered by the disconnect may look too early: give it a moment.
    """
    path = _vms(root) / name
    deadline = time.monotonic() + wait
    while path.is_dir() and _owner_alive(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    if path.is_dir():
        _remove(path)
    return True


def collect_stale(root: Path) -> list[str]:
    """Remove the run directories (and QEMU processes) of owners that died."""
    removed: list[str] = []
    try:
        entries = list(_vms(root).iterdir())
    except OSError:
        return removed
    for path in entries:
        if not path.is_dir() or _owner_alive(path):
            continue
        _remove(path)
        log.debug("removed stale VM directory %s", path)
        removed.append(path.name)
    return removed
