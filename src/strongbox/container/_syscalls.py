"""Raw Linux system calls through ctypes, wrapped as typed functions.

Everything unsafe lives here (as gVisor keeps its ``_unsafe.go`` files): the
rest of the guest code calls these wrappers and gets ``OSError`` with the
right errno, exactly like the ``os`` module's functions. The guest runs
Python 3.11, whose ``os`` lacks ``unshare``/``setns``, hence the wrappers.
Constants and syscall numbers are for x86_64.
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
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_I_VERSION = 0x800000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_DETACH = 0x2

# Namespace flags of clone(2)/unshare(2)/setns(2), from <linux/sched.h>
CLONE_NEWTIME = 0x80
CLONE_NEWNS = 0x20000
CLONE_NEWCGROUP = 0x2000000
CLONE_NEWUTS = 0x4000000
CLONE_NEWIPC = 0x8000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# prctl(2) options, from <linux/prctl.h>
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# reboot(2) commands, from <linux/reboot.h>
RB_AUTOBOOT = 0x01234567
RB_POWER_OFF = 0x4321FEDC

_SYS_CAPSET = 126
_SYS_PIVOT_ROOT = 155
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_TIOCSCTTY = 0x540E
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_AF_INET = 2
_SOCK_DGRAM_CLOEXEC = 2 | 0o2000000

_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.reboot.argtypes = [ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]
_libc.syscall.restype = ctypes.c_long
_libc.socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]


class _Rlimit(ctypes.Structure):
    _fields_ = [("cur", ctypes.c_uint64), ("max", ctypes.c_uint64)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc.prlimit.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Rlimit),
                          ctypes.POINTER(_Rlimit)]


def _check(result: int, what: str, path: str | None = None) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2); raises OSError naming the target."""
    _check(
        _libc.mount(source.encode() if source is not None else None, target.encode(),
                    fstype.encode() if fstype else None, flags,
                    data.encode() if data else None),
        f"mount {fstype or 'bind'} on {target}", target,
    )


def umount(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(target.encode(), flags), f"umount {target}", target)


def reboot(command: int) -> None:
    """reboot(2): only returns on failure."""
    _check(_libc.reboot(ctypes.c_int(command & 0xFFFFFFFF).value), "reboot")


def unshare(flags: int) -> None:
    """unshare(2): move this process into new namespaces of the CLONE_NEW* kinds."""
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace ``fd`` refers to (an open /proc/PID/ns/* file)."""
    _check(_libc.setns(fd, nstype), "setns")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2); glibc has no wrapper, so it goes through syscall(2)."""
    _check(_libc.syscall(ctypes.c_long(_SYS_PIVOT_ROOT), new_root.encode(), put_old.encode()),
           "pivot_root", new_root)


def sethostname(name: str) -> None:
    data = name.encode()
    _check(_libc.sethostname(data, len(data)), "sethostname")


def setdomainname(name: str) -> None:
    data = name.encode()
    _check(_libc.setdomainname(data, len(data)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns the call's non-negative result."""
    result: int = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return result


def become_subreaper() -> None:
    """Adopt orphaned descendants (PR_SET_CHILD_SUBREAPER), as PID 1 does anyway.

    Tests call it so that anything a container leaves behind is reparented
    to the test process, where it can be found and reaped, not to the host's init.
    """
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2), version 3: the three 64-bit sets of this thread."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(
        _CapData(effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF, inheritable & 0xFFFFFFFF),
        _CapData(effective >> 32, permitted >> 32, inheritable >> 32),
    )
    _check(_libc.syscall(ctypes.c_long(_SYS_CAPSET), ctypes.byref(header), data), "capset")


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """prlimit(2) on this process; values are unsigned, 2**64-1 is RLIM_INFINITY."""
    new = _Rlimit(soft, hard)
    _check(_libc.prlimit(0, resource, ctypes.byref(new), None), "setrlimit")


def set_controlling_tty(fd: int) -> None:
    """ioctl(TIOCSCTTY): make the terminal ``fd`` this session's controlling tty.

    Asks politely first; only if another session still holds the tty does it
    take it over (argument 1, which needs CAP_SYS_ADMIN).
    """
    if _libc.ioctl(fd, _TIOCSCTTY, None) == 0:
        return
    _check(_libc.ioctl(fd, _TIOCSCTTY, ctypes.c_void_p(1)), "ioctl TIOCSCTTY")


def loopback_up() -> None:
    """Bring ``lo`` up (SIOCSIFFLAGS) in this network namespace, as runc does for a new one.

    Raw socket(2) + ioctl(2) rather than the ``socket`` module, which imports enum.
    """
    sock = _libc.socket(_AF_INET, _SOCK_DGRAM_CLOEXEC, 0)
    if sock < 0:
        _check(-1, "socket")
    try:
        ifreq = ctypes.create_string_buffer(b"lo", 40)  # struct ifreq: name[16] + union
        _check(_libc.ioctl(sock, _SIOCGIFFLAGS, ifreq), "ioctl SIOCGIFFLAGS lo")
        flags = int.from_bytes(ifreq.raw[16:18], "little") | _IFF_UP
        ctypes.memmove(ctypes.addressof(ifreq) + 16, flags.to_bytes(2, "little"), 2)
        _check(_libc.ioctl(sock, _SIOCSIFFLAGS, ifreq), "ioctl SIOCSIFFLAGS lo")
    finally:
        os.close(sock)
