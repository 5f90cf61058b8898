"""Early mounts: the file systems every guest needs before anything else runs."""

from __future__ import annotations

import os

from strongbox.container._syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, mount

#: (source, target, fstype, flags, data), in mount order.
EARLY_MOUNTS: tuple[tuple[str, str, str, int, str | None], ...] = (
    ("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
    ("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
    ("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"),
    ("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
     "newinstance,ptmxmode=0666,mode=0620,gid=5"),
    ("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"),
    ("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"),
    ("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"),
    ("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate"),
)

#: Conventional /dev symlinks that devtmpfs does not create.
DEV_LINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)


def mount_early() -> None:
    """Mount /proc, /sys, /dev and friends; idempotent so a restarted agent survives."""
    for source, target, fstype, flags, data in EARLY_MOUNTS:
        os.makedirs(target, exist_ok=True)
        if os.path.ismount(target) and target != "/dev/pts":
            continue
        mount(source, target, fstype, flags, data)
    for target, link in DEV_LINKS:
        try:
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(target, link)
        except OSError:
            pass
