"""A ctypes binding to libseccomp: build a seccomp-bpf filter and load it.

libseccomp compiles rules to BPF and knows every architecture's syscall
table, which is why strongbox binds it instead of assembling BPF itself.
The library (``libseccomp.so.2``) is part of the guest initrd; on the host
it comes from Debian's ``libseccomp2``. Constants are those of
``<seccomp.h>`` (libseccomp 2.5).
"""

from __future__ import annotations

import ctypes
import os

# Actions (SCMP_ACT_*).
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_NOTIFY = 0x7FC00000


def act_errno(errno: int) -> int:
    """SCMP_ACT_ERRNO(x): fail the call with ``errno``."""
    return 0x00050000 | (errno & 0xFFFF)


def act_trace(msg: int) -> int:
    """SCMP_ACT_TRACE(x): notify a ptrace tracer."""
    return 0x7FF00000 | (msg & 0xFFFF)


# Comparison operators (enum scmp_compare).
CMP_NE, CMP_LT, CMP_LE, CMP_EQ, CMP_GE, CMP_GT, CMP_MASKED_EQ = range(1, 8)

# Filter attributes (enum scmp_filter_attr).
ATTR_ACT_DEFAULT = 1
ATTR_ACT_BADARCH = 2
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7

# Flags of seccomp(2) SECCOMP_SET_MODE_FILTER that map to attributes.
FLAG_ATTRS = {
    "SECCOMP_FILTER_FLAG_TSYNC": ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": ATTR_CTL_SSB,
}


#: What seccomp_syscall_resolve_name returns for a name it does not know.
_NR_SCMP_ERROR = -1


class ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class SeccompError(OSError):
    """libseccomp returned a negative errno."""


_lib: ctypes.CDLL | None = None


def library() -> ctypes.CDLL:
    """Load libseccomp once and declare the prototypes strongbox uses."""
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(ArgCmp)]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        _lib = lib
    return _lib


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise SeccompError(-rc, f"seccomp {what}: {os.strerror(-rc)}")


class Filter:
    """A seccomp filter under construction; ``load()`` applies it to this thread.

    Unknown syscall names (a profile written for a newer kernel) are skipped
    and reported by :meth:`add_rule`'s return value rather than failing the
    whole container, which is what runc does too.
    """

    def __init__(self, default_action: int) -> None:
        self._lib = library()
        self._ctx = self._lib.seccomp_init(default_action)
        if not self._ctx:
            raise SeccompError(22, "seccomp_init failed: invalid default action")

    def add_arch(self, name: str) -> None:
        token = self._lib.seccomp_arch_resolve_name(name.encode())
        if token == 0:
            raise SeccompError(22, f"seccomp: unknown architecture {name!r}")
        rc = self._lib.seccomp_arch_add(self._ctx, token)
        if rc != -17:  # -EEXIST: the native arch is always present
            _check(rc, f"arch_add {name}")

    def add_rule(self, action: int, syscall: str,
                 args: tuple[tuple[int, int, int, int], ...] = ()) -> bool:
        """Add a rule; returns False when the syscall name is unknown here.

        ``args`` are (argument index, CMP_* operator, datum_a, datum_b).
        """
        nr = self._lib.seccomp_syscall_resolve_name(syscall.encode())
        if nr == _NR_SCMP_ERROR:
            return False
        array = (ArgCmp * max(1, len(args)))(*[ArgCmp(*a) for a in args])
        _check(self._lib.seccomp_rule_add_array(self._ctx, action, nr, len(args), array),
               f"rule {syscall}")
        return True

    def set_attr(self, attr: int, value: int) -> None:
        _check(self._lib.seccomp_attr_set(self._ctx, attr, value), f"attr {attr}")

    def load(self) -> None:
        _check(self._lib.seccomp_load(self._ctx), "load")

    def release(self) -> None:
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None

    def __del__(self) -> None:
        self.release()
