"""Processes finds the QEMU process of a VM's run directory on the host, with the host's pid.

A VM's owner may live in a pid namespace of its own (the CLI's monitor), where its
QEMU has another number than on the host, and ``qemu.pid`` in the run directory
holds the owner's number; host tools (``strongbox metrics``, ``strongbox gc``, the
stale reaper) find QEMU instead by its ``-name strongbox-<name>,...`` and, since two
roots may each run a VM of one name, by the run directory it uses: its command line
names the directory's files, and a jailed QEMU's root is inside it.
"""

from __future__ import annotations

import os
from pathlib import Path


def _qemus() -> list[tuple[int, str, bytes]]:
    """(pid, VM name, command line) of every strongbox QEMU on the host."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        argv = cmdline.split(b"\0")
        if b"qemu-system" not in argv[0] or b"-name" not in argv[:-1]:
            continue
        name = argv[argv.index(b"-name") + 1].split(b",", 1)[0].decode(errors="replace")
        if name.startswith("strongbox-"):
            found.append((int(entry.name), name.removeprefix("strongbox-"), cmdline))
    return found


def _uses(pid: int, cmdline: bytes, run_dir: Path) -> bool:
    inside = os.fsencode(run_dir) + b"/"
    if inside in cmdline:
        return True
    try:
        return (os.readlink(f"/proc/{pid}/root") + "/").startswith(str(run_dir) + "/")
    except OSError:
        return False


def of_run_dirs(run_dirs: list[Path]) -> dict[Path, int]:
    """The QEMU of each run directory that has one running (one look at ``/proc``)."""
    by_name: dict[str, list[Path]] = {}
    for run_dir in run_dirs:
        by_name.setdefault(run_dir.name, []).append(run_dir)
    found: dict[Path, int] = {}
    for pid, name, cmdline in _qemus():
        for run_dir in by_name.get(name, []):
            if _uses(pid, cmdline, run_dir):
                found[run_dir] = pid
    return found


def _run_dir_of(pid: int, name: str, cmdline: bytes) -> Path | None:
    """The run directory a QEMU names (``.../vms/<name>/...`` on its command line, or its
    jail's root inside one), None if it names none."""
    marker = f"/vms/{name}/".encode()
    for arg in cmdline.split(b"\0"):
        for part in arg.split(b","):
            start = part.find(b"/")
            cut = part.find(marker, start) if start >= 0 else -1
            if cut >= 0:
                return Path(os.fsdecode(part[start:cut + len(marker) - 1]))
    try:
        root = os.readlink(f"/proc/{pid}/root")
    except OSError:
        return None
    cut = root.find(f"/vms/{name}/")
    return Path(root[:cut + len(name) + 5]) if cut >= 0 else None


def orphans() -> dict[int, Path]:
    """strongbox QEMUs whose run directory is gone (no owner can be looking after them),
    by pid, with the directory they named."""
    found = {}
    for pid, name, cmdline in _qemus():
        run_dir = _run_dir_of(pid, name, cmdline)
        if run_dir is not None and not run_dir.exists():
            found[pid] = run_dir
    return found
