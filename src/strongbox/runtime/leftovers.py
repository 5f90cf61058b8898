"""Leftovers tells, cheaply, whether a delete has VM run directories to clean up at all.

``delete`` finishes by collecting what dead VM owners left under ``<root>/vms``
(:func:`strongbox.sandbox.rundir.collect`, ``collect_stale``). That module
brings the hypervisor's, the host cgroups' and the network's clean-up code
with it: milliseconds of imports that a normal delete (the live monitor
destroyed its VM and removed its directory) never uses. These checks read
only the directory and ``/proc/locks`` and answer "maybe" whenever they
cannot be sure, so the real collection runs whenever there may be anything
to collect; they never decide what is removed.

The layout is :mod:`strongbox.sandbox.rundir`'s (``vms/<name>/owner.lock``,
flock()ed by the live owner for the VM's whole life); a test keeps the names
equal.
"""

from __future__ import annotations

import os
from pathlib import Path

VMS = "vms"
LOCK = "owner.lock"


def vm_dir_present(root: Path, name: str) -> bool:
    """Whether ``name`` still has a run directory (``rundir.collect`` has work)."""
    return os.path.isdir(root / VMS / name)


def _held_flocks() -> set[str] | None:
    """The ``dev:inode`` keys of every file flock()ed right now (None: unknown)."""
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    held = set()
    for line in lines:
        fields = line.split()  # "1: FLOCK ADVISORY WRITE <pid> <maj:min:ino> 0 EOF"
        if len(fields) >= 6 and fields[1] == "FLOCK":
            held.add(fields[5])
    return held


def dead_owners_possible(root: Path) -> bool:
    """Whether some run directory under ``root`` may have lost its owner.

    False only when every entry of ``<root>/vms`` is a directory whose
    ``owner.lock`` is held (its owner lives), or there is none: then
    ``rundir.collect_stale`` would remove nothing.
    """
    try:
        entries = os.listdir(root / VMS)
    except OSError:
        return False  # no vms/ (or unreadable: collect_stale lists it the same way)
    if not entries:
        return False
    held = _held_flocks()
    if held is None:
        return True
    for entry in entries:
        path = root / VMS / entry
        if os.path.islink(path) or not os.path.isdir(path):
            continue  # collect_stale leaves those alone too
        try:
            info = os.stat(path / LOCK)
        except OSError:
            return True  # no lock: building, abandoned or half removed
        if f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}" not in held:
            return True
    return False
