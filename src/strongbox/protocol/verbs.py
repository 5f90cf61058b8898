"""Verbs declares every request the agent serves, once for both sides: name, parameters, errors.

The host's client calls through these declarations (``AgentClient.call(verbs.X,
params)`` checks its own parameters before they leave) and the agent registers
one handler per declaration; the agent's server checks every request against
its declaration before the handler runs, so a handler reads ``params`` as the
declaration promises and a malformed request is one ``invalid_params`` answer
naming the field. A unit test holds the handler table and this list equal.

The names are the verbs of the host's :class:`~strongbox.sandbox.sandbox.Sandbox`
(``Sandbox.signal_process`` sends ``signal_process``), so grepping a verb walks
the feature through every layer.

Parameter schemas are small on purpose: a Python type (or a tuple of types;
``None`` in a tuple allows JSON null), a :class:`Shape` for a nested object,
:class:`MapOf` for an object of uniform values, :class:`ListOf` for an array.
Keys a declaration does not mention are ignored, so a newer host may send hints
an older agent does not know. Standard library only: the agent imports this at
boot.
"""

from __future__ import annotations

from .messages import E_CONTAINER, E_EXISTS, E_NETWORK, E_NOT_FOUND, E_STATE, InvalidParams

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TypeAlias

    Schema: TypeAlias = "type | tuple[type | None, ...] | Shape | MapOf | ListOf"


class Shape:
    """A JSON object: keys that must be present, keys that may be."""

    __slots__ = ("optional", "required")

    def __init__(self, required: Mapping[str, Schema] | None = None,
                 optional: Mapping[str, Schema] | None = None) -> None:
        self.required: Mapping[str, Schema] = required or {}
        self.optional: Mapping[str, Schema] = optional or {}


class MapOf:
    """A JSON object whose every value has one schema (keys are strings)."""

    __slots__ = ("value",)

    def __init__(self, value: Schema) -> None:
        self.value = value


class ListOf:
    """A JSON array whose every item has one schema."""

    __slots__ = ("item",)

    def __init__(self, item: Schema) -> None:
        self.item = item


def _type_name(types: type | tuple[type, ...]) -> str:
    if isinstance(types, tuple):
        return " or ".join(_type_name(t) for t in types)
    return "None" if types is type(None) else types.__name__


def _matches(value: Any, types: type | tuple[type, ...]) -> bool:
    for t in types if isinstance(types, tuple) else (types,):
        if isinstance(value, bool):
            # bool subclasses int, but True is never a valid memory size or pid.
            if t is bool:
                return True
        elif t is float and isinstance(value, int):
            return True  # JSON has one number type; 1 is a perfectly good 1.0
        elif isinstance(value, t):
            return True
    return False


def _leaf_types(schema: type | tuple[type | None, ...]) -> tuple[type, ...]:
    items = schema if isinstance(schema, tuple) else (schema,)
    return tuple(type(None) if t is None else t for t in items)


def _describe(schema: Schema) -> str:
    if isinstance(schema, Shape):
        return "object"
    if isinstance(schema, MapOf):
        return f"object of {_describe(schema.value)}"
    if isinstance(schema, ListOf):
        return f"array of {_describe(schema.item)}"
    return _type_name(_leaf_types(schema))


def check(value: Any, schema: Schema, where: str) -> None:
    """Raise :class:`InvalidParams` naming ``where`` unless ``value`` fits ``schema``."""
    if isinstance(schema, Shape):
        if not isinstance(value, dict):
            raise InvalidParams(f"{where}: expected object, got {type(value).__name__}")
        for key, sub in schema.required.items():
            if key not in value:
                raise InvalidParams(f"{where}.{key}: missing (expected {_describe(sub)})")
            check(value[key], sub, f"{where}.{key}")
        for key, sub in schema.optional.items():
            if key in value:
                check(value[key], sub, f"{where}.{key}")
    elif isinstance(schema, MapOf):
        if not isinstance(value, dict):
            raise InvalidParams(f"{where}: expected {_describe(schema)}, "
                                f"got {type(value).__name__}")
        for key, item in value.items():
            check(item, schema.value, f"{where}.{key}")
    elif isinstance(schema, ListOf):
        if not isinstance(value, list):
            raise InvalidParams(f"{where}: expected {_describe(schema)}, "
                                f"got {type(value).__name__}")
        for index, item in enumerate(value):
            check(item, schema.item, f"{where}[{index}]")
    elif not _matches(value, _leaf_types(schema)):
        raise InvalidParams(f"{where}: expected {_describe(schema)}, got {type(value).__name__}")


class Verb:
    """One agent request: its name, parameter schema and the error codes it answers with.

    ``errors`` are the request-specific codes; any request may also fail with
    the protocol's own (``invalid_params``, ``internal``, ``os_error``).
    """

    __slots__ = ("errors", "name", "params")

    def __init__(self, name: str, required: Mapping[str, Schema] | None = None,
                 optional: Mapping[str, Schema] | None = None,
                 errors: tuple[str, ...] = ()) -> None:
        self.name = name
        self.params = Shape(required, optional)
        self.errors = errors

    def check(self, params: Any) -> None:
        """Raise :class:`InvalidParams` unless ``params`` fits the declaration."""
        check(params, self.params, "params")

    def __repr__(self) -> str:
        return f"Verb({self.name!r})"


#: The stream ids a process's stdio travels on (null: not connected), and whether
#: it has a terminal (then stdout carries both outputs and stderr is null).
STDIO = Shape({"terminal": bool}, {"stdin": (int, None), "stdout": (int, None),
                                   "stderr": (int, None)})
_ID = {"id": str}
_PROCESS = (E_NOT_FOUND,)
_LIFECYCLE = (E_NOT_FOUND, E_STATE, E_CONTAINER)

# --- system ---------------------------------------------------------------------------
PING = Verb("ping")
GUEST_INFO = Verb("guest_info")
SHUTDOWN = Verb("shutdown")
WARM_UP = Verb("warm_up")
CLONE_IDENTITY = Verb("clone_identity", {"hostname": str, "time_ns": int, "entropy": str})

# --- containers -------------------------------------------------------------------------
#: A file system on a virtio-blk disk (found by its serial) instead of a 9p directory.
DISK = Shape({"serial": str, "fstype": str}, {"readonly": bool})
CREATE_CONTAINER = Verb(
    "create_container",
    {"id": str, "spec": dict, "stdio": STDIO, "mounts": MapOf(str),
     "rootfs": Shape({"path": str}, {"overlay": bool, "disk": DISK})},
    {"disks": MapOf(DISK)},  # bind sources on disks: spec mount index -> disk
    errors=(E_EXISTS, E_CONTAINER))
START_CONTAINER = Verb("start_container", _ID, errors=_LIFECYCLE)
CONTAINER_STATUS = Verb("container_status", _ID, errors=_PROCESS)
PAUSE_CONTAINER = Verb("pause_container", _ID, errors=_LIFECYCLE)
RESUME_CONTAINER = Verb("resume_container", _ID, errors=_LIFECYCLE)
UPDATE_CONTAINER = Verb(
    "update_container",
    {"id": str, "resources": Shape(optional={"memory": dict, "pids": dict, "cpu": dict,
                                             "unified": MapOf(str)})},
    errors=_LIFECYCLE)
STATS_CONTAINER = Verb("stats_container", _ID, errors=(E_NOT_FOUND, E_CONTAINER))
REMOVE_CONTAINER = Verb("remove_container", _ID, errors=(E_NOT_FOUND, E_CONTAINER))

# --- processes (exec id "" is the container's init) -----------------------------------------
EXEC_PROCESS = Verb("exec_process",
                    {"id": str, "exec_id": str, "process": dict, "stdio": STDIO},
                    errors=(E_NOT_FOUND, E_EXISTS, E_STATE, E_CONTAINER))
WAIT_PROCESS = Verb("wait_process", _ID, {"exec_id": str}, errors=_PROCESS)
SIGNAL_PROCESS = Verb("signal_process", {"id": str, "signal": int},
                      {"exec_id": str, "all": bool}, errors=(E_NOT_FOUND, E_STATE))
RESIZE_PTY = Verb("resize_pty", {"id": str, "rows": int, "cols": int}, {"exec_id": str},
                  errors=_PROCESS)
LIST_PROCESSES = Verb("list_processes", _ID, errors=(E_NOT_FOUND, E_CONTAINER))
#: One file operation in the container's root (agent/files.py: read, write, list, stat,
#: remove, mkdir), carried like an exec: data on its stdin or stdout, a failure on stderr
#: and its errno as the exit code; ``wait_process`` with the same exec id ends it.
FILE_TRANSFER = Verb("file_transfer",
                     {"id": str, "exec_id": str, "op": str, "path": str, "stdio": STDIO},
                     {"mode": int}, errors=(E_NOT_FOUND, E_EXISTS, E_STATE, E_CONTAINER))

# --- network ----------------------------------------------------------------------------
#: Bind host interfaces to the VM's NIC slots (agent/nicslots.py): a slot with an
#: interface (a netconfig config) shows in the root network namespace as that
#: interface, one with null is hidden; the answer lists the bound interfaces.
CONFIGURE_NETWORK = Verb("configure_network",
                         {"nics": ListOf(Shape({"slot_mac": str}, {"interface": (dict, None)}))},
                         errors=(E_NETWORK,))

# --- devices ----------------------------------------------------------------------------
#: Power off the PCIe hotplug slot below root port ``port`` (its PCI address, as the VMM
#: names it: "0000:00:10.0"), whose device the host is unplugging: the guest's own
#: eject (agent/pcislots.py) spares the five seconds its hotplug driver waits otherwise.
EJECT_SLOT = Verb("eject_slot", {"port": str}, errors=(E_NOT_FOUND,))

#: A shell in the guest outside every container (agent/debugshell.py), on a terminal of
#: ``rows`` x ``cols`` whose output and input are the ``stdio`` streams; the answer is its
#: guest pid once it runs. The host offers it only with ``[agent] debug_console = true``.
DEBUG_CONSOLE = Verb("debug_console", {"stdio": STDIO, "rows": int, "cols": int},
                     errors=(E_CONTAINER,))

#: Every verb by name: what the agent must serve, no more and no less.
VERBS: dict[str, Verb] = {v.name: v for v in (
    PING, GUEST_INFO, SHUTDOWN, WARM_UP, CLONE_IDENTITY,
    CREATE_CONTAINER, START_CONTAINER, CONTAINER_STATUS, PAUSE_CONTAINER, RESUME_CONTAINER,
    UPDATE_CONTAINER, STATS_CONTAINER, REMOVE_CONTAINER,
    EXEC_PROCESS, WAIT_PROCESS, SIGNAL_PROCESS, RESIZE_PTY, LIST_PROCESSES, FILE_TRANSFER,
    CONFIGURE_NETWORK, EJECT_SLOT, DEBUG_CONSOLE,
)}
