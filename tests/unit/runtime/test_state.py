"""The on-disk container record: StateStore and ContainerState.

Every CLI invocation (``create``, ``state``, ``list``, ``delete`` ...) and
the monitor share these records without talking to each other, so the
contract in :mod:`strongbox.runtime.state` is what keeps them consistent:
an id is claimed atomically, a record is replaced atomically (a concurrent
reader sees the old or the new one, never half), a bad record is a one-line
error, the lock serializes mutating commands, and a record whose monitor
died reads as stopped. No VM, no root.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from strongbox.errors import ContainerExists, ContainerNotFound, StateDirError, StrongboxError
from strongbox.runtime.state import (
    OCI_VERSION,
    STATE_VERSION,
    ContainerState,
    StateStore,
    process_alive,
    process_start_ticks,
)
from strongbox.status import CREATED, CREATING, PAUSED, RUNNING, STOPPED, ContainerStatus
from tests.framework.procs import dead_process


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "root")


def _record(container_id: str = "c1", **fields: object) -> ContainerState:
    return ContainerState(id=container_id, bundle=f"/bundles/{container_id}",
                          rootfs=f"/bundles/{container_id}/rootfs", **fields)  # type: ignore[arg-type]


def _write_raw(store: StateStore, container_id: str, text: str) -> None:
    store.dir(container_id).mkdir(parents=True, exist_ok=True)
    (store.dir(container_id) / "state.json").write_text(text)


# --- create / save / load ----------------------------------------------------------------

def test_create_writes_the_first_record_and_load_reads_it_back(store: StateStore) -> None:
    record = _record(annotations={"a": "b"}, terminal=True, overlay=True, owner="me")
    store.create(record)
    assert (store.dir("c1") / "state.json").is_file()
    loaded = store.load("c1")
    assert loaded == record
    assert loaded.status is CREATING
    assert store.socket_path("c1") == store.dir("c1") / "monitor.sock"
    on_disk = json.loads((store.dir("c1") / "state.json").read_text())
    assert on_disk["version"] == STATE_VERSION and on_disk["status"] == "creating"


def test_second_create_of_one_id_is_refused(store: StateStore) -> None:
    store.create(_record())
    with pytest.raises(ContainerExists, match="container c1 already exists"):
        store.create(_record(terminal=True))
    assert store.load("c1").status is CREATING  # the first record is untouched


def test_concurrent_creates_claim_the_id_once(store: StateStore) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        try:
            store.create(_record())
            outcomes.append("won")
        except ContainerExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(outcomes) == ["exists"] * 7 + ["won"]


def test_save_replaces_the_record_and_leaves_no_temporary_files(store: StateStore) -> None:
    record = _record()
    store.create(record)
    for code in range(20):
        record.exit_code = code
        store.save(record)
    assert os.listdir(store.dir("c1")) == ["state.json"]
    assert store.load("c1").exit_code == 19
    assert (store.dir("c1") / "state.json").stat().st_mode & 0o777 == 0o600


def test_a_reader_never_sees_a_partial_record(store: StateStore) -> None:
    record = _record()
    store.create(record)
    done = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not done.is_set():
            try:
                loaded = store.load("c1")
            except Exception as exc:  # anything at all is a torn read
                problems.append(repr(exc))
                return
            # every record written is self-consistent: the annotation echoes the code
            code = None if loaded.exit_code is None else str(loaded.exit_code)
            if loaded.annotations.get("n") != code:
                problems.append(f"inconsistent record {loaded}")
                return
            reads += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(150):
            record.exit_code = n
            record.annotations = {"n": str(n), "padding": "x" * (n * 37 % 4000)}
            store.save(record)
    finally:
        done.set()
        thread.join(10)
    assert not problems
    assert reads > 0
    assert os.listdir(store.dir("c1")) == ["state.json"]


def test_load_of_an_unknown_id(store: StateStore) -> None:
    with pytest.raises(ContainerNotFound, match="container nope does not exist"):
        store.load("nope")
    store.create(_record())
    with pytest.raises(ContainerNotFound):
        store.load("nope")


def test_wrong_version_is_a_one_line_error_naming_it(store: StateStore) -> None:
    data = _record().to_json()
    data["version"] = 7
    _write_raw(store, "c1", json.dumps(data))
    with pytest.raises(StrongboxError) as info:
        store.load("c1")
    message = str(info.value)
    assert "version 7" in message and "c1" in message and "\n" not in message


@pytest.mark.parametrize("text", ["{not json", "", '{"version": 1}'],
                         ids=["garbage", "empty", "missing-fields"])
def test_unreadable_state_is_a_strongbox_error(store: StateStore, text: str) -> None:
    _write_raw(store, "c1", text)
    with pytest.raises(StrongboxError, match="container c1: unreadable state") as info:
        store.load("c1")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["[]", "null", "3"])
def test_state_that_is_not_an_object_is_a_strongbox_error(store: StateStore, text: str) -> None:
    _write_raw(store, "c1", text)
    with pytest.raises(StrongboxError, match="unreadable state"):
        store.load("c1")


def test_status_is_parsed_into_the_status_model(store: StateStore) -> None:
    store.create(_record(status=RUNNING))
    loaded = store.load("c1")
    assert isinstance(loaded.status, ContainerStatus)
    assert loaded.status is RUNNING


def test_unknown_status_is_refused(store: StateStore) -> None:
    data = _record().to_json()
    data["status"] = "sleeping"
    with pytest.raises(ValueError, match="'sleeping' is not a container status"):
        ContainerState.from_json(data)
    _write_raw(store, "c1", json.dumps(data))
    with pytest.raises(StrongboxError, match=r"unreadable state.*sleeping"):
        store.load("c1")


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    data = _record().to_json()
    data["added_in_a_later_release"] = {"x": 1}
    assert ContainerState.from_json(data) == _record(created=data["created"])


# --- ids / remove ------------------------------------------------------------------------

def test_ids_lists_the_container_directories_sorted(store: StateStore) -> None:
    assert store.ids() == []  # no root yet
    for cid in ("zeta", "alpha", "mid"):
        store.create(_record(cid))
    (store.base / "stray-file").write_text("")
    assert store.ids() == ["alpha", "mid", "zeta"]


def test_remove_deletes_the_directory(store: StateStore) -> None:
    store.create(_record())
    with store.lock("c1"):
        pass
    store.remove("c1")
    assert not store.dir("c1").exists()
    assert store.ids() == []
    with pytest.raises(ContainerNotFound):
        store.load("c1")
    store.remove("c1")  # removing what is gone is not an error
    store.create(_record())  # and the id can be claimed again
    assert store.ids() == ["c1"]


# --- lock --------------------------------------------------------------------------------

def test_lock_serializes_a_second_locker(store: StateStore) -> None:
    store.create(_record())
    order: list[str] = []
    held = threading.Event()
    release = threading.Event()

    def first() -> None:
        with store.lock("c1"):
            order.append("first in")
            held.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        held.wait(10)
        with store.lock("c1", timeout=10):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert held.wait(10)
    time.sleep(0.15)  # the second locker is polling by now
    assert order == ["first in"]
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["first in", "first out", "second in"]


def test_lock_with_a_short_timeout_reports_busy(store: StateStore) -> None:
    store.create(_record())
    with store.lock("c1"):
        started = time.monotonic()
        with pytest.raises(StrongboxError, match="container c1 is busy") as info, \
                store.lock("c1", timeout=0.1):
            pass
        assert time.monotonic() - started < 2
        assert "\n" not in str(info.value)
    with store.lock("c1", timeout=0.1):  # released: free again
        pass


def test_lock_of_an_unknown_container(store: StateStore) -> None:
    with pytest.raises(ContainerNotFound), store.lock("ghost"):
        pass


# --- effective status and the OCI state --------------------------------------------------

def test_process_identity_is_pid_and_start_time() -> None:
    me = os.getpid()
    ticks = process_start_ticks(me)
    assert ticks is not None
    assert process_alive(me, ticks)
    assert not process_alive(me, ticks + 1)  # the pid was reused by another process
    assert not process_alive(me, None)
    assert not process_alive(0, ticks)
    pid, dead_ticks = dead_process()
    assert process_start_ticks(pid) is None or process_start_ticks(pid) != dead_ticks
    assert not process_alive(pid, dead_ticks)


def test_effective_status_is_stopped_when_the_monitor_is_dead() -> None:
    pid, ticks = dead_process()
    for status in (CREATED, RUNNING, PAUSED):
        record = _record(status=status, monitor_pid=pid, monitor_start=ticks)
        assert not record.monitor_alive
        assert record.effective_status() is STOPPED
        assert record.status is status  # the record itself is not rewritten


def test_effective_status_follows_a_live_monitor() -> None:
    me = os.getpid()
    record = _record(status=PAUSED, monitor_pid=me, monitor_start=process_start_ticks(me))
    assert record.monitor_alive
    assert record.effective_status() is PAUSED
    # no monitor yet (still being created): the record is all there is
    assert _record(status=CREATING).effective_status() is CREATING


def test_oci_state_shape() -> None:
    me = os.getpid()
    record = _record(status=RUNNING, monitor_pid=me, monitor_start=process_start_ticks(me),
                     annotations={"k": "v"}, owner="root")
    state = record.oci_state()
    assert state == {"ociVersion": OCI_VERSION, "id": "c1", "status": "running", "pid": me,
                     "bundle": "/bundles/c1", "rootfs": "/bundles/c1/rootfs",
                     "created": record.created, "owner": "root", "annotations": {"k": "v"}}
    assert json.loads(json.dumps(state)) == state
    assert record.created.endswith("Z")


@pytest.mark.parametrize("status", [STOPPED, CREATING])
def test_oci_state_pid_is_zero_when_stopped_or_creating(status: ContainerStatus) -> None:
    me = os.getpid()
    record = _record(status=RUNNING, monitor_pid=me, monitor_start=process_start_ticks(me))
    state = record.oci_state(status)
    assert state["status"] == status and state["pid"] == 0


def test_oci_state_of_a_record_whose_monitor_died() -> None:
    pid, ticks = dead_process()
    record = _record(status=RUNNING, monitor_pid=pid, monitor_start=ticks)
    state = record.oci_state()
    assert state["status"] == "stopped" and state["pid"] == 0


# --- a full root, broken records (issue 11) ----------------------------------------------

def _full_after(monkeypatch: pytest.MonkeyPatch, writes: int = 0) -> None:
    """The file system fills up: every write of a record after ``writes`` more fails."""
    import errno

    from strongbox import atomicfile

    real = os.write
    left = [writes]

    def write(fd: int, data: object) -> int:
        if left[0] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        left[0] -= 1
        return real(fd, data)  # type: ignore[arg-type]

    monkeypatch.setattr(atomicfile.os, "write", write)


def test_create_on_a_full_root_leaves_nothing_and_the_id_stays_usable(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    _full_after(monkeypatch)
    with pytest.raises(StateDirError) as info:
        store.create(_record())
    assert str(info.value) == (f"root {store.root}: cannot create container c1 "
                               "(No space left on device)")
    assert os.listdir(store.base) == []  # no half-claimed id, no temporary directory
    with pytest.raises(ContainerNotFound):
        store.load("c1")
    monkeypatch.undo()
    store.create(_record())  # space again: the id was never taken
    assert store.load("c1").id == "c1"


def test_a_save_that_fails_keeps_the_previous_record(
        store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    record = _record()
    store.create(record)
    before = (store.dir("c1") / "state.json").read_bytes()
    record.status = RUNNING
    _full_after(monkeypatch)
    with pytest.raises(StateDirError) as info:
        store.save(record)
    assert str(info.value) == (f"root {store.root}: cannot record the state of container c1 "
                               "(No space left on device)")
    assert (store.dir("c1") / "state.json").read_bytes() == before
    assert os.listdir(store.dir("c1")) == ["state.json"]


def test_concurrent_creates_leave_no_building_directory(store: StateStore) -> None:
    test_concurrent_creates_claim_the_id_once(store)
    assert os.listdir(store.base) == ["c1"]


def test_an_abandoned_building_directory_is_swept_and_never_listed(store: StateStore) -> None:
    from strongbox.runtime.state import ABANDONED_AFTER, BUILDING_PREFIX

    store.create(_record("a"))
    old, young = store.base / f"{BUILDING_PREFIX}old", store.base / f"{BUILDING_PREFIX}young"
    for path in (old, young):
        path.mkdir()
        (path / "state.json").write_text("{}")
    past = time.time() - ABANDONED_AFTER - 5
    os.utime(old, (past, past))
    assert store.ids() == ["a"]
    store.create(_record("b"))
    assert sorted(os.listdir(store.base)) == sorted(["a", "b", young.name])


def test_a_directory_without_its_record_is_an_error_pointing_at_delete_force(
        store: StateStore) -> None:
    store.dir("c1").mkdir(parents=True)
    (store.dir("c1") / "lock").write_text("")
    with pytest.raises(StrongboxError) as info:
        store.load("c1")
    assert str(info.value) == ("container c1: its state record is missing "
                               "(`strongbox delete --force` removes it)")
    with pytest.raises(ContainerExists):
        store.create(_record())
    store.remove("c1")
    store.create(_record())


def test_an_empty_directory_left_by_an_old_create_does_not_take_the_id(
        store: StateStore) -> None:
    store.dir("c1").mkdir(parents=True)  # what a create killed after its mkdir used to leave
    store.create(_record())  # renamed over it: the empty directory held nothing
    assert store.load("c1").id == "c1"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("monitor_pid", "x", 'monitor_pid: expected an integer, got "x"'),
    ("monitor_pid", True, "monitor_pid: expected an integer, got true"),
    ("monitor_start", [1], "monitor_start: expected an integer or null, got [1]"),
    ("terminal", 1, "terminal: expected true or false, got 1"),
    ("annotations", {"a": 1}, "annotations: expected an object of strings"),
    ("annotations", [], "annotations: expected an object, got []"),
    ("id", 7, "id: expected a string, got 7"),
    ("exit_code", 1.5, "exit_code: expected an integer or null, got 1.5"),
], ids=["pid-string", "pid-bool", "start-list", "terminal-int", "annotation-int",
        "annotations-list", "id-int", "exit-float"])
def test_a_wrongly_typed_record_is_a_one_line_error(store: StateStore, field: str,
                                                    value: object, message: str) -> None:
    data = _record().to_json()
    data[field] = value
    _write_raw(store, "c1", json.dumps(data))
    with pytest.raises(StrongboxError) as info:
        store.load("c1")
    text = str(info.value)
    assert text.startswith("container c1: unreadable state (") and message in text, text
    assert "\n" not in text


def test_every_field_has_a_declared_type() -> None:
    import inspect

    from strongbox.runtime.state import _FIELD_TYPES, FIELDS

    assert set(_FIELD_TYPES) == set(FIELDS)
    assert tuple(inspect.signature(ContainerState).parameters) == FIELDS


def test_a_record_under_another_id_is_refused(store: StateStore) -> None:
    _write_raw(store, "c1", json.dumps(_record("other").to_json()))
    with pytest.raises(StrongboxError, match="it records id 'other'"):
        store.load("c1")


def test_a_root_that_is_a_file_is_named(tmp_path: Path) -> None:
    from strongbox.errors import StateDirError

    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "containers").write_text("")
    store = StateStore(tmp_path / "root")
    for attempt in (store.ids, lambda: store.load("c1"), lambda: store.create(_record())):
        with pytest.raises(StateDirError, match=r"containers is not a directory"):
            attempt()


def test_remove_clears_whatever_occupies_the_id(store: StateStore) -> None:
    store.base.mkdir(parents=True)
    (store.base / "c1").write_text("not a directory")
    assert store.exists("c1")
    store.remove("c1")
    assert not store.exists("c1")
    (store.base / "c1").symlink_to("/nonexistent")
    assert store.exists("c1")
    store.remove("c1")
    assert not store.exists("c1")
