"""Tests for the generated containerd messages: names, field numbers and wire bytes.

The field tables below are copied from the upstream .proto files (each names
its source); the byte strings are encoded by hand from those numbers, so a
wrong number in our .proto files cannot pass by agreeing with itself.
"""

from __future__ import annotations

import pytest
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from strongbox.shim.proto import (
    cgroups_v2_pb2,
    events_pb2,
    events_ttrpc_pb2,
    mount_pb2,
    shim_pb2,
    task_pb2,
)

# containerd 1.6 runtime/v2/task/shim.proto
TASK_MESSAGES: dict[str, dict[str, int]] = {
    "CreateTaskRequest": {"id": 1, "bundle": 2, "rootfs": 3, "terminal": 4, "stdin": 5,
                          "stdout": 6, "stderr": 7, "checkpoint": 8, "parent_checkpoint": 9,
                          "options": 10},
    "CreateTaskResponse": {"pid": 1},
    "DeleteRequest": {"id": 1, "exec_id": 2},
    "DeleteResponse": {"pid": 1, "exit_status": 2, "exited_at": 3},
    "ExecProcessRequest": {"id": 1, "exec_id": 2, "terminal": 3, "stdin": 4, "stdout": 5,
                           "stderr": 6, "spec": 7},
    "ExecProcessResponse": {},
    "ResizePtyRequest": {"id": 1, "exec_id": 2, "width": 3, "height": 4},
    "StateRequest": {"id": 1, "exec_id": 2},
    "StateResponse": {"id": 1, "bundle": 2, "pid": 3, "status": 4, "stdin": 5, "stdout": 6,
                      "stderr": 7, "terminal": 8, "exit_status": 9, "exited_at": 10,
                      "exec_id": 11},
    "KillRequest": {"id": 1, "exec_id": 2, "signal": 3, "all": 4},
    "CloseIORequest": {"id": 1, "exec_id": 2, "stdin": 3},
    "PidsRequest": {"id": 1},
    "PidsResponse": {"processes": 1},
    "CheckpointTaskRequest": {"id": 1, "path": 2, "options": 3},
    "UpdateTaskRequest": {"id": 1, "resources": 2, "annotations": 3},
    "StartRequest": {"id": 1, "exec_id": 2},
    "StartResponse": {"pid": 1},
    "WaitRequest": {"id": 1, "exec_id": 2},
    "WaitResponse": {"exit_status": 1, "exited_at": 2},
    "StatsRequest": {"id": 1},
    "StatsResponse": {"stats": 1},
    "ConnectRequest": {"id": 1},
    "ConnectResponse": {"shim_pid": 1, "task_pid": 2, "version": 3},
    "ShutdownRequest": {"id": 1, "now": 2},
    "PauseRequest": {"id": 1},
    "ResumeRequest": {"id": 1},
}

# containerd 1.6 runtime/v2/task/shim.proto, service Task: rpc -> (request, response)
TASK_RPCS: dict[str, tuple[str, str]] = {
    "State": ("StateRequest", "StateResponse"),
    "Create": ("CreateTaskRequest", "CreateTaskResponse"),
    "Start": ("StartRequest", "StartResponse"),
    "Delete": ("DeleteRequest", "DeleteResponse"),
    "Pids": ("PidsRequest", "PidsResponse"),
    "Pause": ("PauseRequest", "google.protobuf.Empty"),
    "Resume": ("ResumeRequest", "google.protobuf.Empty"),
    "Checkpoint": ("CheckpointTaskRequest", "google.protobuf.Empty"),
    "Kill": ("KillRequest", "google.protobuf.Empty"),
    "Exec": ("ExecProcessRequest", "google.protobuf.Empty"),
    "ResizePty": ("ResizePtyRequest", "google.protobuf.Empty"),
    "CloseIO": ("CloseIORequest", "google.protobuf.Empty"),
    "Update": ("UpdateTaskRequest", "google.protobuf.Empty"),
    "Wait": ("WaitRequest", "WaitResponse"),
    "Stats": ("StatsRequest", "StatsResponse"),
    "Connect": ("ConnectRequest", "ConnectResponse"),
    "Shutdown": ("ShutdownRequest", "google.protobuf.Empty"),
}

# containerd 1.6 api/events/task.proto
EVENT_MESSAGES: dict[str, dict[str, int]] = {
    "TaskCreate": {"container_id": 1, "bundle": 2, "rootfs": 3, "io": 4, "checkpoint": 5,
                   "pid": 6},
    "TaskIO": {"stdin": 1, "stdout": 2, "stderr": 3, "terminal": 4},
    "TaskStart": {"container_id": 1, "pid": 2},
    "TaskDelete": {"container_id": 1, "pid": 2, "exit_status": 3, "exited_at": 4, "id": 5},
    "TaskExit": {"container_id": 1, "id": 2, "pid": 3, "exit_status": 4, "exited_at": 5},
    "TaskOOM": {"container_id": 1},
    "TaskExecAdded": {"container_id": 1, "exec_id": 2},
    "TaskExecStarted": {"container_id": 1, "exec_id": 2, "pid": 3},
    "TaskPaused": {"container_id": 1},
    "TaskResumed": {"container_id": 1},
    "TaskCheckpointed": {"container_id": 1, "checkpoint": 2},
}

# containerd/cgroups cgroup2/stats/metrics.proto (MemoryStat in the order of its numbers)
MEMORY_STAT_ORDER = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty",
    "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file",
    "active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault",
    "pgmajfault", "workingset_refault", "workingset_activate", "workingset_nodereclaim",
    "pgrefill", "pgscan", "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree",
    "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc", "usage", "usage_limit",
    "swap_usage", "swap_limit", "max_usage", "swap_max_usage",
)
CGROUP_MESSAGES: dict[str, dict[str, int]] = {
    "Metrics": {"pids": 1, "cpu": 2, "memory": 4, "rdma": 5, "io": 6, "hugetlb": 7,
                "memory_events": 8},
    "PidsStat": {"current": 1, "limit": 2},
    "CPUStat": {"usage_usec": 1, "user_usec": 2, "system_usec": 3, "nr_periods": 4,
                "nr_throttled": 5, "throttled_usec": 6},
    "MemoryStat": {name: n for n, name in enumerate(MEMORY_STAT_ORDER, start=1)},
    "MemoryEvents": {"low": 1, "high": 2, "max": 3, "oom": 4, "oom_kill": 5},
    "RdmaStat": {"current": 1, "limit": 2},
    "RdmaEntry": {"device": 1, "hca_handles": 2, "hca_objects": 3},
    "IOStat": {"usage": 1},
    "IOEntry": {"major": 1, "minor": 2, "rbytes": 3, "wbytes": 4, "rios": 5, "wios": 6},
    "HugeTlbStat": {"current": 1, "max": 2, "pagesize": 3},
}


def _numbers(descriptor: Descriptor) -> dict[str, int]:
    return {field.name: field.number for field in descriptor.fields}


@pytest.mark.parametrize(("module", "package", "table"), [
    (shim_pb2, "containerd.task.v2", TASK_MESSAGES),
    (events_pb2, "containerd.events", EVENT_MESSAGES),
    (cgroups_v2_pb2, "io.containerd.cgroups.v2", CGROUP_MESSAGES),
    (mount_pb2, "containerd.types",
     {"Mount": {"type": 1, "source": 2, "target": 3, "options": 4}}),
    (task_pb2, "containerd.v1.types",
     {"ProcessInfo": {"pid": 1, "info": 2},
      "Process": {"container_id": 1, "id": 2, "pid": 3, "status": 4, "stdin": 5, "stdout": 6,
                  "stderr": 7, "terminal": 8, "exit_status": 9, "exited_at": 10}}),
    (events_ttrpc_pb2, "containerd.services.events.ttrpc.v1",
     {"ForwardRequest": {"envelope": 1},
      "Envelope": {"timestamp": 1, "namespace": 2, "topic": 3, "event": 4}}),
])
def test_every_message_has_upstream_names_and_numbers(
        module: object, package: str, table: dict[str, dict[str, int]]) -> None:
    messages = module.DESCRIPTOR.message_types_by_name  # type: ignore[attr-defined]
    assert set(messages) == set(table)
    for name, fields in table.items():
        assert messages[name].full_name == f"{package}.{name}"
        assert _numbers(messages[name]) == fields, name


def _type_name(message: type[Message], field: str) -> str:
    """The full name of a message or enum field's type."""
    kind = message.DESCRIPTOR.fields_by_name[field]
    named = kind.message_type or kind.enum_type
    assert named is not None, field
    return named.full_name


def test_field_types_that_matter_on_the_wire() -> None:
    state = shim_pb2.StateResponse
    assert state.DESCRIPTOR.fields_by_name["pid"].type == FieldDescriptor.TYPE_UINT32
    assert _type_name(state, "status") == "containerd.v1.types.Status"
    assert _type_name(state, "exited_at") == "google.protobuf.Timestamp"
    create = shim_pb2.CreateTaskRequest
    assert _type_name(create, "rootfs") == "containerd.types.Mount"
    assert _type_name(create, "options") == "google.protobuf.Any"
    assert _type_name(events_pb2.TaskExit, "exited_at") == "google.protobuf.Timestamp"
    kill = shim_pb2.KillRequest.DESCRIPTOR.fields_by_name
    assert kill["signal"].type == FieldDescriptor.TYPE_UINT32
    assert kill["all"].type == FieldDescriptor.TYPE_BOOL
    memory = cgroups_v2_pb2.MemoryStat.DESCRIPTOR.fields_by_name
    assert {f.type for f in memory.values()} == {FieldDescriptor.TYPE_UINT64}
    assert [f.name for f in cgroups_v2_pb2.Metrics.DESCRIPTOR.fields if f.is_repeated] == [
        "hugetlb"]


def test_status_enum_values() -> None:
    assert dict(task_pb2.Status.items()) == {
        "UNKNOWN": 0, "CREATED": 1, "RUNNING": 2, "STOPPED": 3, "PAUSED": 4, "PAUSING": 5}
    assert task_pb2.Status.DESCRIPTOR.full_name == "containerd.v1.types.Status"


def test_task_service_methods_and_types() -> None:
    service = shim_pb2.DESCRIPTOR.services_by_name["Task"]
    assert service.full_name == "containerd.task.v2.Task"
    got = {m.name: (m.input_type.full_name, m.output_type.full_name) for m in service.methods}
    assert got == {name: (f"containerd.task.v2.{req}",
                          resp if resp.startswith("google.") else f"containerd.task.v2.{resp}")
                   for name, (req, resp) in TASK_RPCS.items()}


def test_events_service_forward() -> None:
    service = events_ttrpc_pb2.DESCRIPTOR.services_by_name["Events"]
    assert service.full_name == "containerd.services.events.ttrpc.v1.Events"
    (forward,) = service.methods
    assert forward.name == "Forward"
    assert forward.input_type.full_name == "containerd.services.events.ttrpc.v1.ForwardRequest"
    assert forward.output_type.full_name == "google.protobuf.Empty"


# Hand-encoded wire bytes: a tag is (field_number << 3) | wire_type, with wire
# type 0 = varint and 2 = length-delimited; varints are little-endian base 128.
@pytest.mark.parametrize(("message", "wire"), [
    (mount_pb2.Mount(type="bind", source="/a", options=["rbind", "ro"]),
     b"\x0a\x04bind" b"\x12\x02/a" b"\x22\x05rbind" b"\x22\x02ro"),
    (shim_pb2.KillRequest(id="c", exec_id="e", signal=9, all=True),
     b"\x0a\x01c" b"\x12\x01e" b"\x18\x09" b"\x20\x01"),
    (shim_pb2.StateResponse(id="c", pid=300, status=task_pb2.RUNNING, exit_status=137,
                            exited_at=Timestamp(seconds=1), exec_id="x"),
     b"\x0a\x01c" b"\x18\xac\x02" b"\x20\x02" b"\x48\x89\x01" b"\x52\x02\x08\x01" b"\x5a\x01x"),
    (shim_pb2.CreateTaskRequest(id="c", rootfs=[mount_pb2.Mount(type="t")], terminal=True,
                                options=AnyProto(type_url="u", value=b"v")),
     b"\x0a\x01c" b"\x1a\x03\x0a\x01t" b"\x20\x01" b"\x52\x06\x0a\x01u\x12\x01v"),
    (shim_pb2.UpdateTaskRequest(id="c", annotations={"k": "v"}),
     b"\x0a\x01c" b"\x1a\x06\x0a\x01k\x12\x01v"),
    (shim_pb2.DeleteResponse(pid=7, exit_status=1, exited_at=Timestamp(seconds=2, nanos=3)),
     b"\x08\x07" b"\x10\x01" b"\x1a\x04\x08\x02\x10\x03"),
    (shim_pb2.ConnectResponse(shim_pid=1, task_pid=2, version="2"),
     b"\x08\x01" b"\x10\x02" b"\x1a\x012"),
    (shim_pb2.PidsResponse(processes=[task_pb2.ProcessInfo(pid=5)]),
     b"\x0a\x02\x08\x05"),
    (events_pb2.TaskExit(container_id="c", id="e", pid=3, exit_status=4,
                         exited_at=Timestamp(seconds=1)),
     b"\x0a\x01c" b"\x12\x01e" b"\x18\x03" b"\x20\x04" b"\x2a\x02\x08\x01"),
    (events_pb2.TaskCreate(container_id="c", io=events_pb2.TaskIO(terminal=True), pid=6),
     b"\x0a\x01c" b"\x22\x02\x20\x01" b"\x30\x06"),
    (events_ttrpc_pb2.ForwardRequest(envelope=events_ttrpc_pb2.Envelope(
        timestamp=Timestamp(seconds=1), namespace="n", topic="t",
        event=AnyProto(type_url="u", value=b"v"))),
     b"\x0a\x12" b"\x0a\x02\x08\x01" b"\x12\x01n" b"\x1a\x01t" b"\x22\x06\x0a\x01u\x12\x01v"),
    # Field numbers past 15 take two-byte tags: 32 << 3 = 256 = 0x80 0x02.
    (cgroups_v2_pb2.MemoryStat(anon=1, usage=2, usage_limit=3, swap_limit=4),
     b"\x08\x01" b"\x80\x02\x02" b"\x88\x02\x03" b"\x98\x02\x04"),
    (cgroups_v2_pb2.Metrics(pids=cgroups_v2_pb2.PidsStat(limit=2**64 - 1),
                            memory_events=cgroups_v2_pb2.MemoryEvents(oom_kill=1)),
     b"\x0a\x0b\x10" + b"\xff" * 9 + b"\x01" b"\x42\x02\x28\x01"),
])
def test_wire_bytes_match_hand_encoding(message: Message, wire: bytes) -> None:
    assert message.SerializeToString(deterministic=True) == wire
    decoded = type(message)()
    decoded.ParseFromString(wire)
    assert decoded == message
