"""Container is a container as one CLI invocation sees it: its record and its monitor.

Commands are glue over these methods, which mirror the monitor's control
operations (and, one layer further, the sandbox's and the agent's verbs):
``Container.kill`` -> ``op_kill`` -> ``Sandbox.signal_process`` -> agent
``signal_process``.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from strongbox.errors import ContainerStateError, StrongboxError
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

    def status(self) -> str:
        """The live status: from the monitor when it answers, else from the record."""
        status = self.record.effective_status()
        if status == st.STOPPED or not self.record.monitor_alive:
            return status
        try:
            reply = control.call(self.store.socket_path(self.id), {"op": "status"},
                                 timeout=STATUS_TIMEOUT)
        except control.ControlError:
            return status
        return str(reply.get("status", status))

    def oci_state(self) -> dict[str, Any]:
        return self.record.oci_state(self.status())

    def _call(self, op: str, timeout: float = 120.0, **fields: Any) -> dict[str, Any]:
        if not self.record.monitor_alive:
            raise ContainerStateError(self.id, op, st.STOPPED,
                                      (st.CREATED, st.RUNNING, st.PAUSED))
        return control.call(self.store.socket_path(self.id), {"op": op, **fields},
                            timeout=timeout)

    def _require(self, operation: str, *allowed: str) -> str:
        status = self.status()
        if status not in allowed:
            raise ContainerStateError(self.id, operation, status, allowed)
        return status

    # --- verbs ----------------------------------------------------------------------------
    def start(self) -> None:
        self._require("start", st.CREATED)
        self._call("start")

    def kill(self, signum: int, all_processes: bool = False) -> None:
        self._require("kill", st.CREATED, st.RUNNING, st.PAUSED)
        self._call("kill", signal=signum, all=all_processes)

    def pause(self) -> None:
        self._require("pause", st.RUNNING)
        self._call("pause")

    def resume(self) -> None:
        self._require("resume", st.PAUSED)
        self._call("resume")

    def update(self, resources: dict[str, Any]) -> None:
        self._require("update", st.CREATED, st.RUNNING, st.PAUSED)
        self._call("update", resources=resources)

    def processes(self) -> list[dict[str, Any]]:
        self._require("list processes of", st.CREATED, st.RUNNING, st.PAUSED)
        return list(self._call("ps")["processes"])

    def stats(self) -> dict[str, Any]:
        return dict(self._call("stats", timeout=30.0)["stats"])

    def delete(self, force: bool = False) -> None:
        """Remove the container; a running one only with ``force`` (SIGKILL first)."""
        status = self.status()
        if status in (st.RUNNING, st.PAUSED) and not force:
            raise ContainerStateError(self.id, "delete", status, (st.STOPPED, st.CREATED))
        if self.record.monitor_alive:
            self._destroy()
        collect_stale(self.store.root)
        self.store.remove(self.id)

    def _destroy(self) -> None:
        """Ask the monitor to kill and tear down; kill it if it will not."""
        try:
            self._call("destroy", timeout=10.0)
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
