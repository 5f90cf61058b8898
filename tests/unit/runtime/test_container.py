"""Container, the CLI's handle on one container, against a fake monitor.

A CLI verb must be exactly one round trip to the monitor (which owns the
status model), and the only decision taken on the CLI side is "is there a
monitor at all": a container whose monitor died is stopped, and a verb on
it is refused with the status model's ContainerStateError without touching
the socket. ``state``/``list`` must answer even when the monitor does not.
The fake monitor is a real ControlServer in tmp_path with a recording
handler; the record's monitor is this test process (or a child standing in
for one), so it counts as alive. No VM, no root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.errors import ContainerNotFound, ContainerStateError, StrongboxError
from strongbox.runtime import container as container_module
from strongbox.runtime.container import Container, force_delete
from strongbox.runtime.control import Connection, ControlError, ControlServer
from strongbox.runtime.state import ContainerState, StateStore, process_start_ticks
from strongbox.status import CREATED, PAUSED, RUNNING, STOPPED, ContainerStatus
from tests.framework.procs import dead_process

CID = "c1"


class CountingServer(ControlServer):
    """A ControlServer that counts the connections it accepts (requests or not)."""

    def __init__(self, path: Path, handler: Any) -> None:
        self.connections = 0
        super().__init__(path, handler)

    def _serve(self, conn: Connection) -> None:
        self.connections += 1
        super()._serve(conn)


Answer = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]


class FakeMonitor:
    """The monitor's side of the control socket: records requests, answers from a table."""

    def __init__(self, store: StateStore, answers: dict[str, Answer] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answers: dict[str, Answer] = {
            "status": {"ok": True, "status": "running", "pid": os.getpid()},
            "ps": {"ok": True, "processes": [{"pid": 7, "comm": "sleep"}]},
            "stats": {"ok": True, "stats": {"pids": {"current": 1}}},
            **(answers or {}),
        }
        self.server = CountingServer(store.socket_path(CID), self._handle)

    @property
    def connections(self) -> int:
        return self.server.connections

    def _handle(self, conn: Connection, message: dict[str, Any], fds: list[int]
                ) -> dict[str, Any]:
        for fd in fds:
            os.close(fd)
        self.requests.append(message)
        answer = self.answers.get(str(message.get("op")), {"ok": True})
        return answer(message) if callable(answer) else answer

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "root")


def _record(status: ContainerStatus, pid: int, start: int | None) -> ContainerState:
    return ContainerState(id=CID, bundle="/bundle", rootfs="/bundle/rootfs", status=status,
                          monitor_pid=pid, monitor_start=start)


def _live(store: StateStore, status: ContainerStatus = RUNNING) -> Container:
    """A container whose monitor (this process) is alive."""
    me = os.getpid()
    store.create(_record(status, me, process_start_ticks(me)))
    return Container.load(store, CID)


@pytest.fixture
def monitors(store: StateStore) -> Iterator[Callable[..., FakeMonitor]]:
    started: list[FakeMonitor] = []

    def start(answers: dict[str, Answer] | None = None) -> FakeMonitor:
        started.append(FakeMonitor(store, answers))
        return started[-1]

    yield start
    for monitor in started:
        monitor.close()


VERBS: list[tuple[str, Callable[[Container], Any], dict[str, Any], Any]] = [
    ("start", lambda c: c.start(), {"op": "start"}, None),
    ("kill", lambda c: c.kill(15), {"op": "kill", "signal": 15, "all": False}, None),
    ("kill-all", lambda c: c.kill(9, all_processes=True),
     {"op": "kill", "signal": 9, "all": True}, None),
    ("pause", lambda c: c.pause(), {"op": "pause"}, None),
    ("resume", lambda c: c.resume(), {"op": "resume"}, None),
    ("update", lambda c: c.update({"pids": {"limit": 5}}),
     {"op": "update", "resources": {"pids": {"limit": 5}}}, None),
    ("processes", lambda c: c.processes(), {"op": "ps"}, [{"pid": 7, "comm": "sleep"}]),
    ("stats", lambda c: c.stats(), {"op": "stats"}, {"pids": {"current": 1}}),
]


@pytest.mark.parametrize(("verb", "request_", "result"), [v[1:] for v in VERBS],
                         ids=[v[0] for v in VERBS])
def test_each_verb_is_one_request(store: StateStore, monitors: Callable[..., FakeMonitor],
                                  verb: Callable[[Container], Any],
                                  request_: dict[str, Any], result: Any) -> None:
    container = _live(store)
    monitor = monitors()
    assert verb(container) == result
    assert monitor.requests == [request_]
    assert monitor.connections == 1


def test_the_monitor_refusing_a_verb_is_a_control_error(
        store: StateStore, monitors: Callable[..., FakeMonitor]) -> None:
    container = _live(store)
    message = "cannot pause container c1: it is paused, not running"
    monitors({"pause": {"ok": False, "error": message, "kind": "ContainerStateError"}})
    with pytest.raises(ControlError) as info:
        container.pause()
    assert str(info.value) == message and info.value.kind == "ContainerStateError"


@pytest.mark.parametrize(("verb", "status"), [(v[1], s) for v in VERBS
                                              for s in (CREATED, RUNNING, PAUSED)],
                         ids=[f"{v[0]}-{s}" for v in VERBS for s in ("created", "running",
                                                                      "paused")])
def test_with_a_dead_monitor_every_verb_is_refused_without_connecting(
        store: StateStore, monitors: Callable[..., FakeMonitor],
        verb: Callable[[Container], Any], status: ContainerStatus) -> None:
    pid, ticks = dead_process()
    store.create(_record(status, pid, ticks))
    container = Container.load(store, CID)
    monitor = monitors()  # someone answers on the socket: it must not be asked
    with pytest.raises(ContainerStateError, match="it is stopped") as info:
        verb(container)
    assert info.value.current == "stopped"
    assert "\n" not in str(info.value)
    time.sleep(0.02)
    assert monitor.connections == 0 and monitor.requests == []


# --- delete ------------------------------------------------------------------------------

def test_delete_without_force_of_a_running_container_is_refused(
        store: StateStore, monitors: Callable[..., FakeMonitor]) -> None:
    container = _live(store)
    monitor = monitors()
    with pytest.raises(ContainerStateError, match="cannot delete container c1: it is running"):
        container.delete()
    assert monitor.requests == [{"op": "status"}]  # asked, and nothing destroyed
    assert store.ids() == [CID]


def test_delete_of_a_stopped_container_does_not_ask_the_monitor(
        store: StateStore, monitors: Callable[..., FakeMonitor]) -> None:
    pid, ticks = dead_process()
    store.create(_record(RUNNING, pid, ticks))
    monitor = monitors()
    Container.load(store, CID).delete()
    assert store.ids() == []
    assert monitor.connections == 0


@pytest.fixture
def stand_in() -> Iterator[subprocess.Popen[bytes]]:
    """A child process standing in for a monitor: alive until killed, reaped at the end."""
    proc = subprocess.Popen(["sleep", "30"])
    yield proc
    proc.kill()
    proc.wait()


def test_forced_delete_asks_the_monitor_to_destroy(
        store: StateStore, monitors: Callable[..., FakeMonitor],
        stand_in: subprocess.Popen[bytes]) -> None:
    store.create(_record(RUNNING, stand_in.pid, process_start_ticks(stand_in.pid)))
    container = Container.load(store, CID)

    def destroy(message: dict[str, Any]) -> dict[str, Any]:
        stand_in.kill()  # the monitor kills the container, tears down and exits
        stand_in.wait()
        return {"ok": True}

    monitor = monitors({"destroy": destroy})
    container.delete(force=True)
    assert monitor.requests == [{"op": "destroy"}]  # no status first: destroy is always allowed
    assert store.ids() == []


def test_forced_delete_kills_a_monitor_that_does_not_finish(
        store: StateStore, monitors: Callable[..., FakeMonitor],
        stand_in: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container_module, "DESTROY_TIMEOUT", 0.2)
    store.create(_record(RUNNING, stand_in.pid, process_start_ticks(stand_in.pid)))
    monitor = monitors()  # answers destroy, but its process never ends
    started = time.monotonic()
    Container.load(store, CID).delete(force=True)
    assert time.monotonic() - started < 5
    assert monitor.requests == [{"op": "destroy"}]
    assert stand_in.wait(5) == -signal.SIGKILL
    assert store.ids() == []


# --- status ------------------------------------------------------------------------------

def test_status_comes_from_the_monitor_when_it_answers(
        store: StateStore, monitors: Callable[..., FakeMonitor]) -> None:
    container = _live(store, CREATED)  # the record lags behind
    monitor = monitors({"status": {"ok": True, "status": "paused", "pid": os.getpid()}})
    assert container.status() is PAUSED
    assert monitor.requests == [{"op": "status"}]
    state = container.oci_state()
    assert state["status"] == "paused" and state["pid"] == os.getpid()


def test_status_falls_back_to_the_record_without_a_monitor_socket(store: StateStore) -> None:
    container = _live(store, PAUSED)
    assert not store.socket_path(CID).exists()
    assert container.status() is PAUSED


def test_status_falls_back_to_the_record_when_the_monitor_is_wedged(
        store: StateStore, monitors: Callable[..., FakeMonitor],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container_module, "STATUS_TIMEOUT", 0.2)
    container = _live(store, RUNNING)
    release = threading.Event()

    def wedged(message: dict[str, Any]) -> dict[str, Any]:
        release.wait(10)
        return {"ok": True, "status": "paused"}

    monitors({"status": wedged})
    started = time.monotonic()
    try:
        assert container.status() is RUNNING
        assert time.monotonic() - started < 3
    finally:
        release.set()


def test_status_falls_back_to_the_record_on_a_nonsense_answer(
        store: StateStore, monitors: Callable[..., FakeMonitor]) -> None:
    container = _live(store, RUNNING)
    monitors({"status": {"ok": True, "status": "sleepy"}})
    assert container.status() is RUNNING


def test_status_with_a_dead_monitor_is_stopped_without_connecting(
        store: StateStore, monitors: Callable[..., FakeMonitor]) -> None:
    pid, ticks = dead_process()
    store.create(_record(RUNNING, pid, ticks))
    monitor = monitors()
    container = Container.load(store, CID)
    assert container.status() is STOPPED
    assert container.oci_state()["pid"] == 0
    assert monitor.connections == 0


# --- delete --force of whatever is on disk (issue 11) ------------------------------------

BROKEN_RECORDS = {
    "empty-directory": None,
    "no-state-json": {"lock": ""},
    "corrupt": {"state.json": "{not json"},
    "empty-file": {"state.json": ""},
    "json-list": {"state.json": "[]"},
    "pid-string": {"state.json": '{"version": 1, "id": "c1", "bundle": "/b", "rootfs": "/r", '
                                 '"monitor_pid": "x"}'},
    "other-id": {"state.json": '{"version": 1, "id": "zz", "bundle": "/b", "rootfs": "/r"}'},
    "state-is-a-directory": {"state.json/": ""},
}


def _broken(store: StateStore, files: dict[str, str] | None) -> None:
    store.dir(CID).mkdir(parents=True)
    for name, text in (files or {}).items():
        if name.endswith("/"):
            (store.dir(CID) / name).mkdir()
        else:
            (store.dir(CID) / name).write_text(text)


@pytest.mark.parametrize("files", list(BROKEN_RECORDS.values()), ids=list(BROKEN_RECORDS))
def test_forced_delete_clears_an_id_whatever_its_record(store: StateStore,
                                                        files: dict[str, str] | None) -> None:
    _broken(store, files)
    if files is not None and "state.json" in files:
        with pytest.raises(StrongboxError):  # everything else refuses it, in one line
            Container.load(store, CID)
    force_delete(store, CID)
    assert not store.exists(CID)
    store.create(_record(CREATED, 0, None))  # and the id is free again


def test_forced_delete_of_a_stray_file_in_the_id(store: StateStore) -> None:
    store.base.mkdir(parents=True)
    store.dir(CID).write_text("junk")
    force_delete(store, CID)
    assert not store.exists(CID)


def test_forced_delete_of_nothing_is_not_found(store: StateStore) -> None:
    with pytest.raises(ContainerNotFound):
        force_delete(store, CID)


#: A process standing in for a monitor whose record is lost: it listens on the control
#: socket, answers destroy, and exits (``obey``) or stays until killed.
LISTENER = """
import json, socket, sys, time
sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
sock.bind(sys.argv[1]); sock.listen(4)
print("ready", flush=True)
while True:
    conn, _ = sock.accept()
    if json.loads(conn.recv(65536)).get("op") == "destroy":
        conn.send(b'{"ok": true}')
        if sys.argv[2] == "obey":
            sys.exit(0)
"""


@pytest.mark.parametrize("obey", [True, False], ids=["exits", "must-be-killed"])
def test_forced_delete_stops_a_live_monitor_found_by_its_socket(
        store: StateStore, monkeypatch: pytest.MonkeyPatch, obey: bool) -> None:
    monkeypatch.setattr(container_module, "DESTROY_TIMEOUT", 0.5)
    _broken(store, {"state.json": "[]"})  # no pid to be read from the record
    proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(store.socket_path(CID)),
                             "obey" if obey else "stay"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        force_delete(store, CID)
        assert proc.wait(5) == (0 if obey else -signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert not store.exists(CID)


def test_delete_of_a_created_container_stops_its_monitor(
        store: StateStore, monitors: Callable[..., FakeMonitor],
        stand_in: subprocess.Popen[bytes]) -> None:
    """Not forced, but a created container's monitor holds a VM: it is destroyed too."""
    store.create(_record(CREATED, stand_in.pid, process_start_ticks(stand_in.pid)))

    def destroy(message: dict[str, Any]) -> dict[str, Any]:
        stand_in.kill()
        stand_in.wait()
        return {"ok": True}

    monitor = monitors({"status": {"ok": True, "status": "created", "pid": stand_in.pid},
                        "destroy": destroy})
    Container.load(store, CID).delete()
    assert monitor.requests == [{"op": "status"}, {"op": "destroy"}]
    assert store.ids() == []
