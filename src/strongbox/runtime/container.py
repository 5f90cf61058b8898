"""Container is a container as one CLI invocation sees it: its record and its monitor.

Commands are glue over these methods, which mirror the monitor's control
operations (and, one layer further, the sandbox's and the agent's verbs):
``Container.kill`` -> ``op_kill`` -> ``Sandbox.signal_process`` -> agent
``signal_process``. A verb is one round trip to the monitor, which checks
the status model (in the sandbox); here only "is there a monitor at all" is
decided: a container whose monitor is gone is stopped, and the verb is
refused with the same :class:`~strongbox.errors.ContainerStateError`.

``delete --force`` (:func:`force_delete`) is the exception to "load the
record first": it must clear an id whatever is, or is not, on disk (no
directory content, no state.json, a corrupt or wrongly typed one). It finds
the monitor by every means there is (the record's pid if the record reads,
the peer of the control socket ``monitor.sock``, the holder of the VM run
directory's ``owner.lock``), asks it to destroy, kills it if it does not go,
then removes the VM's run directory and the record.

Every CLI invocation loads this module, most of them (``state``, ``kill``,
``start`` ...) only to ask a record or send one request: the control socket
and the sandbox's clean-up code (:mod:`strongbox.sandbox.rundir`, with the
hypervisor's and the network's leftovers behind it) are imported where they
are used, and the clean-up only when :mod:`.leftovers` sees something to clean.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from strongbox import status as sm
from strongbox.errors import ContainerNotFound, StateDirError, StrongboxError
from strongbox.runtime import leftovers
from strongbox.runtime import state as st

#: `state` and `list` must answer even when a VM is wedged: the monitor answers
#: status from memory, and if it does not within this, the record is used.
STATUS_TIMEOUT = 2.0
#: How long `delete --force` waits for a monitor to finish before killing it.
DESTROY_TIMEOUT = 20.0
#: How long the monitor has to answer a forced delete's destroy request.
DESTROY_REQUEST_TIMEOUT = 10.0
#: How long a monitor that cannot be asked to destroy (no socket) has before it is killed.
UNREACHABLE_GRACE = 2.0
#: How long a SIGKILLed process may take to be gone (a D-state exit is slow, not endless).
KILL_WAIT = 10.0

#: A process, identified beyond pid reuse: (pid, start time in clock ticks).
Process = tuple[int, int]


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
        from strongbox.runtime import control

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
        from strongbox.runtime import control

        try:
            return control.call(self.store.socket_path(self.id), {"op": op, **fields},
                                timeout=timeout)
        except control.MonitorUnreachable as exc:
            raise control.MonitorUnreachable(f"container {self.id}: {exc} (deleted?)") \
                from exc

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
        if force:
            force_delete(self.store, self.id, self.record)
            return
        sm.require(self.status(), sm.DELETE, self.id)
        _clear(self.store, self.id, self.record, find_monitor=self.record.monitor_alive)


def force_delete(store: st.StateStore, container_id: str,
                 record: st.ContainerState | None = None) -> None:
    """``delete --force``: stop whatever lives for the id, then remove everything of it.

    Works from the directory alone: ``record`` (or the one on disk) is used if
    it can be read, and is not needed.
    """
    if not store.exists(container_id):
        store.load(container_id)  # the root's own problem, or ContainerNotFound
        raise ContainerNotFound(container_id)
    if record is None:
        try:
            record = store.load(container_id)
        except StrongboxError:
            pass
    _clear(store, container_id, record, find_monitor=True)


def _clear(store: st.StateStore, container_id: str, record: st.ContainerState | None, *,
           find_monitor: bool) -> None:
    """Stop the monitor (a created container's too), remove the VM's files and the record.

    Without ``find_monitor`` (a record that says its monitor is dead) nobody is asked.
    """
    if find_monitor:
        _stop_monitors(store, container_id, record)
    if leftovers.vm_dir_present(store.root, container_id):
        _remove_vm(store.root, container_id)
    if leftovers.dead_owners_possible(store.root):
        from strongbox.sandbox.rundir import collect_stale

        collect_stale(store.root)
    _remove_record(store, container_id)


def _stop_monitors(store: st.StateStore, container_id: str,
                   record: st.ContainerState | None) -> None:
    """Ask the monitor to destroy; kill every process standing for it that will not go."""
    monitors: set[Process] = set()
    if record is not None and record.monitor_alive and record.monitor_start is not None:
        monitors.add((record.monitor_pid, record.monitor_start))
    peer = _request_destroy(store.socket_path(container_id))
    if peer is not None:
        monitors.add(peer)
    monitors = {m for m in monitors if m[0] != os.getpid()}  # never ourselves (in tests)
    # A monitor that heard the request tears down on its own; one that cannot hear it
    # (no socket: still booting, or already tearing down) gets a moment, then is killed.
    _wait_gone(monitors, DESTROY_TIMEOUT if peer is not None else UNREACHABLE_GRACE)
    _kill(monitors)


def _request_destroy(socket_path: Path) -> Process | None:
    """Send ``destroy`` to whoever listens on the control socket: who heard it, if anyone."""
    from strongbox.runtime import control

    try:
        conn = control.connect(socket_path, timeout=DESTROY_REQUEST_TIMEOUT)
    except control.ControlError:
        return None
    try:
        pid = conn.peer_pid()
        ticks = st.process_start_ticks(pid)
        try:
            conn.send({"op": "destroy"})
            conn.recv()  # its answer, or its end: either way it has heard
        except (OSError, control.ControlError):
            pass
    finally:
        conn.close()
    return (pid, ticks) if pid > 0 and ticks is not None else None


def _alive(process: Process) -> bool:
    return st.process_alive(*process)


def _wait_gone(processes: set[Process], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in processes):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _kill(processes: set[Process]) -> None:
    """SIGKILL those still alive and wait for them to be gone."""
    for pid, ticks in processes:
        if _alive((pid, ticks)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _wait_gone(processes, KILL_WAIT)


def _remove_vm(root: Path, container_id: str) -> None:
    """The VM's run directory; a live owner that no monitor identity named is killed first.

    Only a strongbox CLI process for this id is killed that way (a monitor
    whose record and socket were both lost): never anything else that may
    hold a run directory of the same name, which is then left to its owner
    (the id is cleared all the same).
    """
    import logging

    from strongbox.sandbox.rundir import collect, owner_pid

    if collect(root, container_id, wait=0.5):
        return
    pid = owner_pid(root, container_id)
    ticks = st.process_start_ticks(pid) if pid else None
    if pid and ticks is not None and pid != os.getpid() and _is_monitor_of(pid, container_id):
        _kill({(pid, ticks)})
    if not collect(root, container_id, wait=5.0):
        logging.getLogger("strongbox.runtime").warning(
            "container %s: %s is held by process %s, not its monitor: left alone",
            container_id, root / "vms" / container_id, pid)


def _is_monitor_of(pid: int, container_id: str) -> bool:
    """Whether ``pid`` is a ``strongbox create``/``run`` of ``container_id`` (its monitor)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    cli = any(Path(a).name == "strongbox" for a in argv)
    return cli and container_id in argv[1:] and bool({"create", "run"} & set(argv))


def _remove_record(store: st.StateStore, container_id: str) -> None:
    store.remove(container_id)
    if store.exists(container_id):
        raise StateDirError(f"root {store.root}: cannot remove {store.dir(container_id)}")
