"""Tests for the task API conversions: mounts, status, time, Any type URLs and envelopes."""

from __future__ import annotations

import json
import math
import re

import pytest
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import Message

from strongbox.shim import convert
from strongbox.shim.proto import events_pb2, events_ttrpc_pb2, mount_pb2, shim_pb2, task_pb2

OVERLAY = mount_pb2.Mount(type="overlay", source="overlay",
                          options=["lowerdir=/l1:/l2", "upperdir=/u", "workdir=/w"])


def _create(*mounts: mount_pb2.Mount) -> shim_pb2.CreateTaskRequest:
    return shim_pb2.CreateTaskRequest(
        id="c1", bundle="/run/containerd/io.containerd.runtime.v2.task/default/c1",
        rootfs=mounts, stdin="/fifo/in", stdout="/fifo/out", stderr="/fifo/err",
        terminal=True, checkpoint="")


# --- mounts -------------------------------------------------------------------

def test_mounts_from_request_keeps_order_and_fields() -> None:
    bind = mount_pb2.Mount(type="bind", source="/snap/7/fs", options=["rbind", "ro"])
    assert convert.mounts_from_request(_create(OVERLAY, bind)) == [
        {"type": "overlay", "source": "overlay", "target": "",
         "options": ["lowerdir=/l1:/l2", "upperdir=/u", "workdir=/w"]},
        {"type": "bind", "source": "/snap/7/fs", "target": "", "options": ["rbind", "ro"]},
    ]


def test_no_rootfs_mounts_is_an_empty_list() -> None:
    assert convert.mounts_from_request(_create()) == []


@pytest.mark.parametrize(("mount", "where"), [
    (mount_pb2.Mount(source="/x"), "rootfs[0].type"),
    (mount_pb2.Mount(type="bind", source="/x\0y"), "rootfs[0].source"),
    (mount_pb2.Mount(type="bind", options=["ro", "a\0"]), "rootfs[0].options[1]"),
])
def test_malformed_mounts_are_refused(mount: mount_pb2.Mount, where: str) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(where)}: expected"):
        convert.mounts_from_request(_create(mount))


def test_mounts_round_trip_to_proto() -> None:
    request = _create(OVERLAY)
    assert list(convert.mounts_to_proto(convert.mounts_from_request(request))) == \
        list(request.rootfs)


def test_create_event_mirrors_the_request() -> None:
    event = convert.create_event(_create(OVERLAY), pid=42)
    assert event == events_pb2.TaskCreate(
        container_id="c1", bundle="/run/containerd/io.containerd.runtime.v2.task/default/c1",
        rootfs=[OVERLAY], pid=42,
        io=events_pb2.TaskIO(stdin="/fifo/in", stdout="/fifo/out", stderr="/fifo/err",
                             terminal=True))


# --- status -------------------------------------------------------------------

@pytest.mark.parametrize(("word", "value"), [
    ("created", task_pb2.CREATED), ("running", task_pb2.RUNNING),
    ("stopped", task_pb2.STOPPED), ("paused", task_pb2.PAUSED),
    ("pausing", task_pb2.PAUSING), ("unknown", task_pb2.UNKNOWN),
    ("creating", task_pb2.UNKNOWN), ("", task_pb2.UNKNOWN),
])
def test_status_to_proto(word: str, value: int) -> None:
    assert convert.status_to_proto(word) == value


# --- timestamps -----------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "whole", "nanos"), [
    (0, 0, 0),
    (1700000000, 1700000000, 0),
    (1700000000.25, 1700000000, 250_000_000),
    (1.9999999999, 2, 0),  # rounds into the next second, never nanos == 1e9
    (-1.5, -2, 500_000_000),  # nanos stay non-negative before the epoch
    (-62135596800, -62135596800, 0),  # 0001-01-01, Go's zero time.Time
])
def test_timestamp(seconds: float, whole: int, nanos: int) -> None:
    stamp = convert.timestamp(seconds)
    assert (stamp.seconds, stamp.nanos) == (whole, nanos)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 253402300800, -62135596801,
                                 True, "1", None])
def test_timestamp_refuses_impossible_times(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^timestamp: "):
        convert.timestamp(bad)  # type: ignore[arg-type]


# --- events ---------------------------------------------------------------------

EVENTS: list[tuple[Message, str]] = [
    (events_pb2.TaskCreate(container_id="c"), "/tasks/create"),
    (events_pb2.TaskStart(container_id="c", pid=1), "/tasks/start"),
    (events_pb2.TaskOOM(container_id="c"), "/tasks/oom"),
    (events_pb2.TaskExit(container_id="c", pid=1, exit_status=2), "/tasks/exit"),
    (events_pb2.TaskDelete(container_id="c"), "/tasks/delete"),
    (events_pb2.TaskExecAdded(container_id="c", exec_id="e"), "/tasks/exec-added"),
    (events_pb2.TaskExecStarted(container_id="c", exec_id="e"), "/tasks/exec-started"),
    (events_pb2.TaskPaused(container_id="c"), "/tasks/paused"),
    (events_pb2.TaskResumed(container_id="c"), "/tasks/resumed"),
    (events_pb2.TaskCheckpointed(container_id="c"), "/tasks/checkpointed"),
]


@pytest.mark.parametrize(("event", "topic"), EVENTS)
def test_event_topic_and_any(event: Message, topic: str) -> None:
    assert convert.event_topic(event) == topic
    packed = convert.any_event(event)
    # typeurl v1: the bare proto full name, no type.googleapis.com/ prefix.
    assert packed.type_url == f"containerd.events.{type(event).__name__}"
    assert packed.value == event.SerializeToString()


def test_every_event_message_has_a_topic() -> None:
    names = set(events_pb2.DESCRIPTOR.message_types_by_name) - {"TaskIO"}
    assert {cls.DESCRIPTOR.name for cls in convert.EVENT_TOPICS} == names


@pytest.mark.parametrize("not_event", [events_pb2.TaskIO(), shim_pb2.KillRequest()])
def test_non_events_have_no_topic(not_event: Message) -> None:
    with pytest.raises(ValueError, match=r"expected a containerd\.events task event"):
        convert.event_topic(not_event)
    with pytest.raises(ValueError):
        convert.any_event(not_event)


def test_any_message_uses_the_bare_full_name() -> None:
    packed = convert.any_message(shim_pb2.DeleteResponse(pid=3))
    assert packed.type_url == "containerd.task.v2.DeleteResponse"
    assert packed.value == b"\x08\x03"


def test_envelope() -> None:
    exit_event = events_pb2.TaskExit(container_id="c", id="c", pid=9, exit_status=137)
    request = convert.envelope("k8s.io", exit_event, 1700000000.5)
    assert isinstance(request, events_ttrpc_pb2.ForwardRequest)
    env = request.envelope
    assert (env.namespace, env.topic) == ("k8s.io", "/tasks/exit")
    assert (env.timestamp.seconds, env.timestamp.nanos) == (1700000000, 500_000_000)
    assert env.event.type_url == "containerd.events.TaskExit"
    decoded = events_pb2.TaskExit()
    decoded.ParseFromString(env.event.value)
    assert decoded == exit_event


def test_envelope_needs_a_namespace() -> None:
    with pytest.raises(ValueError, match="namespace"):
        convert.envelope("", events_pb2.TaskOOM(container_id="c"), 0)


# --- JSON-carried OCI values ------------------------------------------------------

def _json_any(type_url: str, value: object) -> AnyProto:
    return AnyProto(type_url=type_url, value=json.dumps(value).encode())


def test_process_spec_from_any() -> None:
    process = {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "true"],
               "env": ["PATH=/bin"], "cwd": "/"}
    spec = _json_any("types.containerd.io/opencontainers/runtime-spec/1/Process", process)
    assert convert.process_spec_from_any(spec) == process


def test_resources_from_any() -> None:
    resources = {"memory": {"limit": 268435456}, "cpu": {"quota": 50000, "period": 100000}}
    packed = _json_any("types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
                       resources)
    assert convert.resources_from_any(packed) == resources


def test_absent_resources_change_nothing() -> None:
    assert convert.resources_from_any(None) == {}
    assert convert.resources_from_any(shim_pb2.UpdateTaskRequest(id="c").resources) == {}


def test_absent_exec_spec_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^exec spec: expected an OCI Process"):
        convert.process_spec_from_any(shim_pb2.ExecProcessRequest(id="c").spec)


@pytest.mark.parametrize(("packed", "message"), [
    (_json_any("type.googleapis.com/opencontainers/runtime-spec/1/Process", {}),
     "expected type URL"),
    (_json_any(convert.LINUX_RESOURCES_TYPE_URL, {}), "expected type URL"),
    (AnyProto(type_url=convert.PROCESS_TYPE_URL, value=b"{not json"), "invalid JSON at line 1"),
    (AnyProto(type_url=convert.PROCESS_TYPE_URL, value=b"\xff\xfe\xfd"), "not UTF-8 text"),
    (_json_any(convert.PROCESS_TYPE_URL, ["sh"]), "expected a JSON object, got list"),
])
def test_malformed_exec_spec_is_refused(packed: AnyProto, message: str) -> None:
    with pytest.raises(ValueError, match=f"^exec spec: {message}"):
        convert.process_spec_from_any(packed)


def test_malformed_resources_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^update resources: expected type URL"):
        convert.resources_from_any(_json_any(convert.PROCESS_TYPE_URL, {}))
