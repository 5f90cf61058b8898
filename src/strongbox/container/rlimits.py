"""Rlimits maps the OCI ``process.rlimits`` list to setrlimit(2) calls.

Names are ``RLIMIT_*`` of ``<asm-generic/resource.h>``; values are the
spec's unsigned 64-bit numbers, so 2**64-1 means unlimited (RLIM_INFINITY)
without translation. Limits are set while the process is still root:
raising a hard limit needs CAP_SYS_RESOURCE.
"""

from __future__ import annotations

from strongbox.container import _syscalls
from strongbox.container.errors import ContainerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: RLIMIT_* name -> resource number (x86_64 numbering).
NUMBERS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

RLIM_INFINITY = 2**64 - 1


class Rlimit:
    """One limit: its name (for messages), resource number, soft and hard values."""

    __slots__ = ("hard", "name", "resource", "soft")

    def __init__(self, name: str, resource: int, soft: int, hard: int) -> None:
        self.name = name
        self.resource = resource
        self.soft = soft
        self.hard = hard

    def __repr__(self) -> str:
        return f"Rlimit({self.name}, soft={self.soft}, hard={self.hard})"


def _value(raw: Any, name: str) -> int:
    value = int(raw)
    if value < 0:  # some clients write -1 for "unlimited"
        value = RLIM_INFINITY
    if value > RLIM_INFINITY:
        raise ContainerError("rlimit", f"{name}: value {raw} out of range")
    return value


def parse(entries: list[dict[str, Any]]) -> list[Rlimit]:
    """Parse ``process.rlimits``; an unknown or repeated type is a spec error."""
    limits = []
    seen = set()
    for entry in entries:
        name = str(entry.get("type", ""))
        resource = NUMBERS.get(name)
        if resource is None:
            raise ContainerError("rlimit", f"unknown rlimit type {name!r}")
        if name in seen:
            raise ContainerError("rlimit", f"rlimit {name} is set twice")
        seen.add(name)
        soft = _value(entry.get("soft", 0), name)
        hard = _value(entry.get("hard", 0), name)
        if soft > hard:
            raise ContainerError("rlimit", f"{name}: soft limit {soft} exceeds hard limit {hard}")
        limits.append(Rlimit(name, resource, soft, hard))
    return limits


def apply(limits: list[Rlimit]) -> None:
    for limit in limits:
        try:
            _syscalls.setrlimit(limit.resource, limit.soft, limit.hard)
        except OSError as exc:
            raise ContainerError.from_os(
                "rlimit", f"setrlimit {limit.name} (soft {limit.soft}, hard {limit.hard})",
                exc) from exc
