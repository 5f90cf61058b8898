"""Reaper collects every exited child of PID 1, adopted orphans included.

As init, the agent inherits every process whose parent dies; without
``waitpid(-1)`` they would pile up as zombies. Processes the agent started on
purpose register a callback to learn their exit status; the rest are just
reaped.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    ExitCallback = Callable[[int], None]


class Reaper:
    """Reaps children after SIGCHLD and reports the ones somebody waits for."""

    def __init__(self) -> None:
        self._waiters: dict[int, ExitCallback] = {}
        self.reaped = 0

    def watch(self, pid: int, callback: ExitCallback) -> None:
        """Call ``callback(wait_status)`` when ``pid`` exits."""
        self._waiters[pid] = callback

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.reaped += 1
            callback = self._waiters.pop(pid, None)
            if callback is not None:
                callback(status)
