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

from strongbox.errors import ContainerExists, ContainerNotFound, StrongboxError
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
