"""Processes finds every strongbox QEMU on the host by the VM name on its command line.

A VM's owner may live in a pid namespace of its own (the CLI's monitor), where its
QEMU has another number than on the host, and ``qemu.pid`` in the run directory
holds the owner's number; host tools (``strongbox metrics``, ``strongbox gc``) find
QEMU by its ``-name strongbox-<name>,...`` instead, with the host's pid.
"""

from __future__ import annotations

import os


def by_name() -> dict[str, int]:
    """Every strongbox QEMU on the host by VM name (its ``-name strongbox-<name>,...``),
    with its pid as the host sees it: an owner in a pid namespace of its own (the CLI's
    monitor) knows its QEMU by another number."""
    found: dict[str, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or b"qemu-system" not in argv[0] or b"-name" not in argv:
            continue
        value = argv[argv.index(b"-name") + 1] if argv.index(b"-name") + 1 < len(argv) else b""
        name = value.split(b",", 1)[0].decode(errors="replace")
        if name.startswith("strongbox-"):
            found[name.removeprefix("strongbox-")] = int(entry.name)
    return found
