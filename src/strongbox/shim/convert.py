"""Convert turns containerd task API messages into the shim's plain values and back.

Pure functions, no I/O: the shim service calls them at its boundary so that
no other module builds or picks apart a protobuf message inline (the kata
shim's ``trans_from_shim.rs`` / ``trans_into_agent.rs`` split).

Type URLs, the one fact a Python protobuf user gets wrong by default
---------------------------------------------------------------------
containerd 1.6 packs and unpacks every ``google.protobuf.Any`` with
``github.com/containerd/typeurl`` v1 (``types.go``), not with the protobuf
library's ``Any.Pack``:

* ``TypeURL(v)`` looks ``v`` up in typeurl's own registry first; a type found
  there is marshalled as **JSON** under the registered path, which
  ``Register`` builds with ``path.Join(args...)``. containerd's
  ``runtime/typeurl.go`` (and the client's ``client.go`` ``init``) register
  ``specs.Process`` and ``specs.LinuxResources`` as
  ``"types.containerd.io"`` + ``"opencontainers/runtime-spec"`` + major
  version + name, i.e. ``types.containerd.io/opencontainers/runtime-spec/1/Process``.
* Any other protobuf message falls back to ``proto.MessageName(pb)``: the
  **bare full name** the gogo ``.pb.go`` registered, with **no**
  ``type.googleapis.com/`` prefix, and the value is the protobuf encoding.
  So a TaskExit event is ``containerd.events.TaskExit`` and cgroup v2 stats
  are ``io.containerd.cgroups.v2.Metrics``.
* Unpacking (``getTypeByUrl``) matches the registry path exactly, then calls
  gogo's ``proto.MessageType(url)``, an exact-name lookup. An Any made with
  Python's ``Any.Pack`` (``type.googleapis.com/containerd.events.TaskExit``)
  is therefore *not found* by containerd 1.6: never use ``Pack`` here, use
  :func:`any_message`.

Malformed input (a wrong type URL, bad JSON, an impossible time) raises
``ValueError`` whose message names the field and what was expected; the
service maps it to ttrpc InvalidArgument.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from strongbox import status as sm
from strongbox.errors import ConfigError
from strongbox.oci.jsonfile import decode_json
from strongbox.shim.proto import events_pb2, events_ttrpc_pb2, mount_pb2, shim_pb2, task_pb2

#: typeurl path of an OCI Process (ExecProcessRequest.spec); value is JSON.
PROCESS_TYPE_URL: Final = "types.containerd.io/opencontainers/runtime-spec/1/Process"
#: typeurl path of OCI LinuxResources (UpdateTaskRequest.resources); value is JSON.
LINUX_RESOURCES_TYPE_URL: Final = (
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources")

#: Event message -> topic, from containerd 1.6 ``runtime/events.go``.
EVENT_TOPICS: Final[dict[type[Message], str]] = {
    events_pb2.TaskCreate: "/tasks/create",
    events_pb2.TaskStart: "/tasks/start",
    events_pb2.TaskOOM: "/tasks/oom",
    events_pb2.TaskExit: "/tasks/exit",
    events_pb2.TaskDelete: "/tasks/delete",
    events_pb2.TaskExecAdded: "/tasks/exec-added",
    events_pb2.TaskExecStarted: "/tasks/exec-started",
    events_pb2.TaskPaused: "/tasks/paused",
    events_pb2.TaskResumed: "/tasks/resumed",
    events_pb2.TaskCheckpointed: "/tasks/checkpointed",
}

#: The shim's status words -> containerd.v1.types.Status (containerd 1.6
#: ``api/types/task/task.proto``); the runc shim's State maps the same words.
_STATUS: Final[dict[str, task_pb2.Status]] = {
    "unknown": task_pb2.UNKNOWN,
    sm.CREATED: task_pb2.CREATED,
    sm.RUNNING: task_pb2.RUNNING,
    sm.STOPPED: task_pb2.STOPPED,
    sm.PAUSED: task_pb2.PAUSED,
    "pausing": task_pb2.PAUSING,
}

# google.protobuf.Timestamp's documented range: 0001-01-01T00:00:00Z to
# 9999-12-31T23:59:59.999999999Z (google/protobuf/timestamp.proto).
_MIN_SECONDS: Final = -62135596800
_MAX_SECONDS: Final = 253402300799


def mounts_from_request(req: shim_pb2.CreateTaskRequest) -> list[dict[str, Any]]:
    """The rootfs mounts of a Create request, in order, as plain dicts.

    Each is ``{"type": str, "source": str, "target": str, "options": [str]}``,
    the fields of ``containerd.types.Mount`` (``api/types/mount.proto``).

    containerd sends none when the bundle's ``rootfs/`` is already populated,
    otherwise usually one (overlay or bind) whose target is empty: it is
    mounted on ``<bundle>/rootfs``. A mount without a type, or with a NUL in
    any string (which mount(2) cannot take), is malformed.
    """
    mounts: list[dict[str, Any]] = []
    for index, mount in enumerate(req.rootfs):
        where = f"rootfs[{index}]"
        if not mount.type:
            raise ValueError(f"{where}.type: expected a mount type, got an empty string")
        for name in ("type", "source", "target"):
            _no_nul(getattr(mount, name), f"{where}.{name}")
        for n, option in enumerate(mount.options):
            _no_nul(option, f"{where}.options[{n}]")
        mounts.append({"type": mount.type, "source": mount.source, "target": mount.target,
                       "options": list(mount.options)})
    return mounts


def mounts_to_proto(mounts: Iterable[Mapping[str, Any]]) -> list[mount_pb2.Mount]:
    """The inverse of :func:`mounts_from_request`, e.g. for a TaskCreate event."""
    return [mount_pb2.Mount(type=m["type"], source=m["source"], target=m["target"],
                            options=m["options"]) for m in mounts]


def create_event(req: shim_pb2.CreateTaskRequest, pid: int) -> events_pb2.TaskCreate:
    """The TaskCreate event for a successful Create, filled as the runc shim fills it.

    Source: containerd 1.6 ``runtime/v2/runc/task/service.go`` Create.
    """
    return events_pb2.TaskCreate(
        container_id=req.id, bundle=req.bundle, rootfs=req.rootfs,
        io=events_pb2.TaskIO(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr,
                             terminal=req.terminal),
        checkpoint=req.checkpoint, pid=pid)


def status_to_proto(status: str) -> task_pb2.Status:
    """A status word ("created", "running", ...) as ``containerd.v1.types.Status``.

    Words the table does not know become UNKNOWN, as the runc shim's State
    does for an unrecognised runc status.
    """
    return _STATUS.get(status, task_pb2.UNKNOWN)


def timestamp(seconds: float) -> Timestamp:
    """Seconds since the epoch (``time.time()``) as a ``google.protobuf.Timestamp``.

    Nanos are always in ``[0, 1e9)``, as the Timestamp contract requires,
    so times before 1970 round towards the past.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError(f"timestamp: expected seconds as a number, got {seconds!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"timestamp: expected a finite number of seconds, got {seconds!r}")
    whole = math.floor(seconds)
    nanos = round((seconds - whole) * 1_000_000_000)
    if nanos >= 1_000_000_000:  # 0.9999999999 rounds up into the next second
        whole, nanos = whole + 1, nanos - 1_000_000_000
    if not _MIN_SECONDS <= whole <= _MAX_SECONDS:
        raise ValueError(f"timestamp: {seconds!r} s is outside years 1..9999")
    return Timestamp(seconds=whole, nanos=nanos)


def any_message(msg: Message) -> AnyProto:
    """``typeurl.MarshalAny`` for a protobuf message: bare full name + protobuf bytes.

    Not ``AnyProto.Pack``: see the module docstring for why the
    ``type.googleapis.com/`` prefix would make containerd 1.6 reject it.
    """
    return AnyProto(type_url=msg.DESCRIPTOR.full_name, value=msg.SerializeToString())


def any_event(msg: Message) -> AnyProto:
    """A task event (one of :data:`EVENT_TOPICS`) as the Any an Envelope carries."""
    event_topic(msg)  # refuses what is not an event
    return any_message(msg)


def event_topic(msg: Message) -> str:
    """The topic containerd files this event under, e.g. ``/tasks/exit``."""
    topic = EVENT_TOPICS.get(type(msg))
    if topic is None:
        raise ValueError(f"event: expected a containerd.events task event, "
                         f"got {msg.DESCRIPTOR.full_name}")
    return topic


def envelope(namespace: str, msg: Message, when: float) -> events_ttrpc_pb2.ForwardRequest:
    """The ``Events.Forward`` request publishing ``msg`` in ``namespace`` at ``when``.

    ``when`` is seconds since the epoch: the time the event happened, which
    the publisher stamps before queueing (containerd 1.6
    ``runtime/v2/shim/publisher.go`` Publish), not the time of sending.
    """
    if not namespace:
        raise ValueError("envelope.namespace: expected a containerd namespace, got ''")
    return events_ttrpc_pb2.ForwardRequest(envelope=events_ttrpc_pb2.Envelope(
        timestamp=timestamp(when), namespace=namespace, topic=event_topic(msg),
        event=any_event(msg)))


def process_spec_from_any(spec: AnyProto | None) -> dict[str, Any]:
    """ExecProcessRequest.spec: the JSON OCI Process as a dict.

    Only the envelope is checked here (type URL, JSON object); the fields
    are the OCI checker's business (``strongbox.oci``), which can name them.
    """
    if spec is None or (not spec.type_url and not spec.value):
        raise ValueError("exec spec: expected an OCI Process, got nothing")
    return _json_object(spec, PROCESS_TYPE_URL, "exec spec")


def resources_from_any(resources: AnyProto | None) -> dict[str, Any]:
    """UpdateTaskRequest.resources: the JSON OCI LinuxResources as a dict.

    containerd leaves the field unset when an Update carries only
    annotations; that (None, or an empty Any) is ``{}``, i.e. change nothing.
    """
    if resources is None or (not resources.type_url and not resources.value):
        return {}
    return _json_object(resources, LINUX_RESOURCES_TYPE_URL, "update resources")


def _json_object(value: AnyProto, type_url: str, what: str) -> dict[str, Any]:
    """Decode an Any that typeurl marshalled as JSON, insisting on ``type_url``."""
    if value.type_url != type_url:
        raise ValueError(f"{what}: expected type URL {type_url!r}, got {value.type_url!r}")
    try:  # the one reader of untrusted JSON: size, depth, surrogates
        decoded = decode_json(value.value, what)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(decoded, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(decoded).__name__}")
    return decoded


def _no_nul(text: str, where: str) -> None:
    if "\0" in text:
        raise ValueError(f"{where}: expected a string without NUL bytes, got {text!r}")
