"""Migration saves and loads a VM's device state, for VM templates.

Only device state travels: guest RAM lives in a memory-backend file that a
template writes (``share=on``) and clones map privately (``share=off``), and
``x-ignore-shared`` tells QEMU not to copy it. The state goes through a file
descriptor, never a path or a command: a jailed QEMU may neither open files
outside its chroot nor spawn ``cat``. Saving hands the descriptor over QMP
(``getfd``, a name); loading uses one inherited at start (``fd:N``).
Facts from QEMU 7.2 (qapi/migration.json) and Kata's template code.
"""

from __future__ import annotations

import asyncio
import time

from strongbox.errors import HypervisorError
from strongbox.hypervisor.qemu.qmp import Monitor

_POLL = 0.01
_IGNORE_SHARED = {"capabilities": [{"capability": "x-ignore-shared", "state": True}]}


async def _wait(monitor: Monitor, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = await monitor.execute("query-migrate")
        status = info.get("status") if isinstance(info, dict) else None
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            detail = info.get("error-desc", status) if isinstance(info, dict) else status
            raise HypervisorError(f"{what} failed: {detail}")
        if time.monotonic() > deadline:
            raise HypervisorError(f"{what} did not finish within {timeout:g}s (status {status})")
        await asyncio.sleep(_POLL)


async def save_state(monitor: Monitor, fd: int, timeout: float) -> None:
    """stop; write device state to ``fd`` (handed over with getfd); the VM stays paused."""
    await monitor.execute("stop")
    await monitor.execute("migrate-set-capabilities", _IGNORE_SHARED)
    await monitor.send_fd(fd, "template-state")
    await monitor.execute("migrate", {"uri": "fd:template-state"})
    await _wait(monitor, "saving the VM template", timeout)


async def load_state(monitor: Monitor, fd: int, timeout: float) -> None:
    """Load device state from inherited ``fd`` into a QEMU started with ``-incoming defer``."""
    await monitor.execute("migrate-set-capabilities", _IGNORE_SHARED)
    await monitor.execute("migrate-incoming", {"uri": f"fd:{fd}"})
    await _wait(monitor, "restoring the VM template", timeout)
