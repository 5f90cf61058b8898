"""Container is a container as one CLI invocation sees it: its record and its monitor.

Commands are glue over these methods, which mirror the monitor's control
operations (and, one layer further, the sandbox's and the agent's verbs):
``Container.kill`` -> ``op_kill`` -> ``Sandbox.signal_process`` -> agent
``signal_process``. A verb is one round trip to the monitor, which checks
the status model (in the sandbox); here only "is there a monitor at all" is
decided: a container whose monitor is gone is stopped, and the verb is
refused with the same :class:`~strongbox.errors.ContainerStateError`.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from strongbox import status as sm
from strongbox.errors import StrongboxError
from strongbox.runtime import control
from strongbox.runtime import state as st
from strongbox.sandbox.rundir import collect_stale

#: `state` and `list` must answer even when a VM is wedged: the monitor answers
#: status from memory, and if it does not within this, the record is used.
STATUS_TIMEOUT = 2.0
#: How long `delete --force` waits for a monitor to finish before killing it.
DESTROY_TIMEOUT = 20.0


class Container:
    """One container under a runtime root."""

    def __init__(self, store: st.StateStore, record: st.ContainerState) -> None:
        self.store = store
        self.record = record

    @classmethod
    def load(cls, store: st.StateStore, container_id: str) -> Container:
        return cls(store, store.load(container_id))

    @property
    def id(self) -> str:
        return self.record.id

    def status(self) -> sm.ContainerStatus:
        """The live status: from the monitor when it answers, else from the record."""
        status = self.record.effective_status()
        if status == sm.STOPPED or not self.record.monitor_alive:
            return status
        try:
            reply = control.call(self.store.socket_path(self.id), {"op": "status"},
                                 timeout=STATUS_TIMEOUT)
            return sm.ContainerStatus(str(reply.get("status")))
        except (control.ControlError, ValueError):
            return status

    def oci_state(self) -> dict[str, Any]:
        return self.record.oci_state(self.status())

    def require_monitor(self, verb: str) -> None:
        """Refuse ``verb`` as the status model would if no monitor holds the container."""
        if not self.record.monitor_alive:
            sm.require(self.record.effective_status(), verb, self.id)

    def _call(self, op: str, verb: str, timeout: float = 120.0, **fields: Any
              ) -> dict[str, Any]:
        self.require_monitor(verb)
        return control.call(self.store.socket_path(self.id), {"op": op, **fields},
                            timeout=timeout)

    # --- verbs ----------------------------------------------------------------------------
    def start(self) -> None:
        self._call("start", sm.START)

    def kill(self, signum: int, all_processes: bool = False) -> None:
        self._call("kill", sm.KILL, signal=signum, all=all_processes)

    def pause(self) -> None:
        self._call("pause", sm.PAUSE)

    def resume(self) -> None:
        self._call("resume", sm.RESUME)

    def update(self, resources: dict[str, Any]) -> None:
        self._call("update", sm.UPDATE, resources=resources)

    def processes(self) -> list[dict[str, Any]]:
        return list(self._call("ps", sm.PS)["processes"])

    def stats(self) -> dict[str, Any]:
        return dict(self._call("stats", sm.STATS, timeout=30.0)["stats"])

    def delete(self, force: bool = False) -> None:
        """Remove the container; a running one only with ``force`` (SIGKILL first)."""
        sm.require(self.status(), sm.DESTROY if force else sm.DELETE, self.id)
        if self.record.monitor_alive:
            self._destroy()
        collect_stale(self.store.root)
        self.store.remove(self.id)

    def _destroy(self) -> None:
        """Ask the monitor to kill and tear down; kill it if it will not."""
        try:
            self._call("destroy", sm.DESTROY, timeout=10.0)
        except StrongboxError:
            pass
        deadline = time.monotonic() + DESTROY_TIMEOUT
        while self.record.monitor_alive and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.record.monitor_alive:
            try:
                os.kill(self.record.monitor_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while self.record.monitor_alive:
                time.sleep(0.02)
