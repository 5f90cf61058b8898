"""Raw Linux system calls through ctypes, wrapped as typed functions.

Everything unsafe lives here (as gVisor keeps its ``_unsafe.go`` files): the
rest of the guest code calls these wrappers and gets ``OSError`` with the
right errno, exactly like the ``os`` module's functions.
"""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

# mount(2) flags, from <linux/mount.h>
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000

MNT_DETACH = 0x2

# reboot(2) commands, from <linux/reboot.h>
RB_AUTOBOOT = 0x01234567
RB_POWER_OFF = 0x4321FEDC

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.reboot.argtypes = [ctypes.c_int]


def _check(result: int, what: str, path: str | None = None) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def mount(source: str, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); raises OSError naming the target."""
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                    flags, data.encode() if data else None),
        f"mount {fstype or 'bind'} on {target}", target,
    )


def umount(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(target.encode(), flags), f"umount {target}", target)


def reboot(command: int) -> None:
    """reboot(2): only returns on failure."""
    _check(_libc.reboot(ctypes.c_int(command & 0xFFFFFFFF).value), "reboot")
