"""Cgroupfs reads where the host's cgroup hierarchies are mounted (``/proc/self/mountinfo``).

Shared by the jailer's own cgroup and the sandbox's host cgroup: both must
find each controller's mount, on cgroup v1, v2 or a hybrid of both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CgroupMount:
    """One cgroup file system mount (a line of mountinfo)."""

    path: Path
    version: int  # 1 or 2
    #: v1: the controllers bound to it (from the super options); v2: empty.
    options: frozenset[str]


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[CgroupMount]:
    """The cgroup mounts in ``text`` (the format of /proc/self/mountinfo), in order."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or len(fields) < 5:
            continue
        fstype, options = fields[sep + 1], fields[sep + 3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        mounts.append(CgroupMount(Path(_unescape(fields[4])), 2 if fstype == "cgroup2" else 1,
                                  frozenset(options.split(","))))
    return mounts
