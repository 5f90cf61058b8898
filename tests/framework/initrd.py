"""Tiny busybox initrds for tests and the raw-boot baseline.

They boot the same kernel as strongbox but run a shell script as /init, so
a test can stand in for an agent that never answers, and the benchmark can
measure a boot with no agent at all.
"""

from __future__ import annotations

from pathlib import Path

from strongbox.guest.cpio import CpioWriter

BUSYBOX = Path("/bin/busybox")


def busybox_initrd(path: Path, script: str) -> Path:
    """Write an initrd whose /init is ``script`` run by busybox sh."""
    with path.open("wb") as f:
        cpio = CpioWriter(f)
        for d in ("proc", "sys", "dev", "tmp"):
            cpio.add_dir(d)
        cpio.add_char_device("dev/console", 5, 1)
        cpio.add_file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
        cpio.add_symlink("bin/sh", "busybox")
        cpio.add_file("init", ("#!/bin/sh\n" + script).encode(), 0o755)
        cpio.close()
    return path


#: An "agent" that never answers: the guest boots and then just waits.
SILENT_INIT = "exec /bin/busybox sleep 3600\n"
#: The raw-boot baseline: reset the VM as soon as /init runs.
REBOOT_INIT = "exec /bin/busybox reboot -f\n"
