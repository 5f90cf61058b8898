"""The containerd protobuf messages the shim speaks, as generated Python.

One ``.proto`` per upstream package, written by hand from containerd 1.6 and
containerd/cgroups (each file names its source); ``*_pb2.py`` and
``*_pb2.pyi`` beside them are generated and checked in:

    mount_pb2         containerd.types                     Mount
    task_pb2          containerd.v1.types                  Status, Process, ProcessInfo
    shim_pb2          containerd.task.v2                   Task service and its messages
    events_pb2        containerd.events                    TaskCreate ... TaskCheckpointed
    events_ttrpc_pb2  containerd.services.events.ttrpc.v1  Events service: ForwardRequest
    cgroups_v2_pb2    io.containerd.cgroups.v2             Metrics (the Stats answer)

The .proto files import one another as ``strongbox/shim/proto/<name>.proto``
(protoc runs with ``src`` as the include root), so the generated modules
import each other as ``strongbox.shim.proto.<name>_pb2``. After editing a
.proto, regenerate with ``scripts/gen-proto.sh``; it also adds the
``# ruff: noqa`` / mypy headers the generated files carry.

Pack an ``Any`` with ``strongbox.shim.convert.any_message``, never with
``Any.Pack``: containerd 1.6 wants the bare type name (see that module).
"""
