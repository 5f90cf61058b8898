"""Messages are the typed JSON payloads of HELLO, REQUEST, RESPONSE and EVENT frames.

JSON keeps the control plane debuggable and needs nothing beyond the standard library
in the guest.  Decoding is deliberately strict: the host treats everything coming out
of the guest as hostile, so a payload that is not exactly the expected shape is a
ProtocolError naming the offending field, never a KeyError deep inside the host.

Request and response ids travel in the frame's channel field, not in the JSON, so the
host can route a response before parsing it and the payload carries only content.
"""

from __future__ import annotations

from .frame import KIND_NAMES, Frame, Kind, ProtocolError, _Value, encode_frame
from .jsoncodec import dumps as _json_dumps
from .jsoncodec import loads as _json_loads

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

E_UNKNOWN_METHOD = "unknown_method"
E_INVALID_PARAMS = "invalid_params"
E_NOT_FOUND = "not_found"
E_EXISTS = "exists"
E_INTERNAL = "internal"
E_BUSY = "busy"
E_OS = "os_error"
E_UNSUPPORTED = "unsupported"
E_TIMEOUT = "timeout"
#: The container is not in a status that allows the request; data is
#: {"status": current, "required": [statuses the request needs]}.
E_STATE = "invalid_state"
#: A container step failed (spec, setup, exec, cgroup); exec failures carry {"exit_code": n}.
E_CONTAINER = "container_error"
#: Configuring the guest's network failed (a NIC slot not found, a netlink step
#: refused); the message names the interface or slot and the step.
E_NETWORK = "network"

MAX_METHOD_LENGTH = 64
_MAX_ID = 0xFFFFFFFF


def _dumps(obj: dict[str, Any]) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON and the strict decoder would reject them.
    return _json_dumps(obj).encode()


def _check_id(value: int, what: str) -> None:
    if type(value) is not int or not 1 <= value <= _MAX_ID:
        raise ValueError(f"{what} id must be an int in 1..{_MAX_ID}, got {value!r}")


_NEW_DICT: Any = object()
"""Default of Request.params and Event.data: stands for "a new empty dict per instance"."""


class Hello(_Value):
    """Handshake message; the host speaks first, the agent echoes the nonce.

    The nonce proves the answer belongs to this connection attempt (a stale agent
    reply left in the serial port buffer must not complete a new handshake).  On a
    version mismatch the agent still answers, with error set, so the host can report
    something better than a timeout.
    """

    __match_args__ = ("version", "nonce", "role", "software", "features", "error")
    __slots__ = __match_args__

    version: int
    nonce: str
    role: str
    software: str
    features: tuple[str, ...]
    error: str

    def __init__(
        self,
        version: int,
        nonce: str,
        role: str,
        software: str = "",
        features: tuple[str, ...] = (),
        error: str = "",
    ) -> None:
        self.version = version
        self.nonce = nonce
        self.role = role
        self.software = software
        self.features = features
        self.error = error

    def encode(self) -> bytes:
        obj: dict[str, Any] = {
            "version": self.version,
            "nonce": self.nonce,
            "role": self.role,
            "software": self.software,
            "features": list(self.features),
        }
        if self.error:
            obj["error"] = self.error
        return encode_frame(Kind.HELLO, 0, _dumps(obj))


class Request(_Value):
    """A call from host to agent; many may be in flight, matched to responses by id."""

    __match_args__ = ("id", "method", "params")
    __slots__ = __match_args__

    id: int
    method: str
    params: dict[str, Any]

    def __init__(self, id: int, method: str, params: dict[str, Any] = _NEW_DICT) -> None:
        _check_id(id, "request")
        if not isinstance(method, str) or not 0 < len(method) <= MAX_METHOD_LENGTH:
            raise ValueError(f"method must be a str of 1..{MAX_METHOD_LENGTH} chars")
        self.id = id
        self.method = method
        self.params = {} if params is _NEW_DICT else params

    def encode(self) -> bytes:
        payload = _dumps({"method": self.method, "params": self.params})
        return encode_frame(Kind.REQUEST, self.id, payload)


class RemoteError(_Value):
    """An error reported by the peer.  Plain data, not an exception: the host maps it to its own."""

    __match_args__ = ("code", "message", "data")
    __slots__ = __match_args__

    code: str
    message: str
    data: dict[str, Any] | None

    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            obj["data"] = self.data
        return obj


class Response(_Value):
    """The answer to the request with the same id; carries a result or an error, never both."""

    __match_args__ = ("id", "result", "error")
    __slots__ = __match_args__

    id: int
    result: Any
    error: RemoteError | None

    def __init__(self, id: int, result: Any = None, error: RemoteError | None = None) -> None:
        _check_id(id, "response")
        if error is not None and result is not None:
            raise ValueError("a response carries a result or an error, not both")
        self.id = id
        self.result = result
        self.error = error

    @property
    def ok(self) -> bool:
        return self.error is None

    def encode(self) -> bytes:
        obj = {"error": self.error.to_json()} if self.error is not None else {"result": self.result}
        return encode_frame(Kind.RESPONSE, self.id, _dumps(obj))


class Event(_Value):
    """An unsolicited notification from the agent, e.g. "process_exited" or "oom"."""

    __match_args__ = ("name", "data")
    __slots__ = __match_args__

    name: str
    data: dict[str, Any]

    def __init__(self, name: str, data: dict[str, Any] = _NEW_DICT) -> None:
        self.name = name
        self.data = {} if data is _NEW_DICT else data

    def encode(self) -> bytes:
        return encode_frame(Kind.EVENT, 0, _dumps({"name": self.name, "data": self.data}))


Message = Hello | Request | Response | Event


def decode_message(frame: Frame) -> Message:
    """Parse and validate the payload of a HELLO/REQUEST/RESPONSE/EVENT frame."""
    decoder = _DECODERS.get(frame.kind)
    if decoder is None:
        raise ProtocolError(f"{Kind.name_of(frame.kind)} frame does not carry a message")
    where = f"{KIND_NAMES[frame.kind]} payload"
    try:
        obj = _json_loads(frame.payload.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{where}: invalid UTF-8 ({exc.reason})") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ProtocolError(f"{where}: invalid JSON ({exc})") from None
    except RecursionError:  # "[[[[..." fits in a frame; the decoder recurses per level
        raise ProtocolError(f"{where}: invalid JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"{where}: expected a JSON object, got {_json_type(obj)}")
    return decoder(frame.channel, obj, where)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _str(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    """A required key must be a non-empty string; an optional one defaults to ""."""
    if required:
        value = obj.get(key)
        if not isinstance(value, str) or not value:
            raise ProtocolError(f"{where}: {key!r} must be a non-empty string")
        return value
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise ProtocolError(f"{where}: {key!r} must be a string")
    return value


def _object(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: {key!r} must be an object, got {_json_type(value)}")
    return value


def _channel_id(channel: int, where: str) -> int:
    if channel == 0:
        raise ProtocolError(f"{where}: id must not be 0")
    return channel


def _require_channel_zero(channel: int, where: str) -> None:
    if channel != 0:
        raise ProtocolError(f"{where}: channel must be 0, got {channel}")


def _decode_hello(channel: int, obj: dict[str, Any], where: str) -> Hello:
    _require_channel_zero(channel, where)
    version = obj.get("version")
    if type(version) is not int or version < 0:
        raise ProtocolError(f"{where}: 'version' must be a non-negative integer")
    if not isinstance(obj.get("nonce"), str):
        raise ProtocolError(f"{where}: 'nonce' must be a string")
    features = obj.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ProtocolError(f"{where}: 'features' must be an array of strings")
    return Hello(
        version=version,
        nonce=obj["nonce"],
        role=_str(obj, "role", where),
        software=_str(obj, "software", where, required=False),
        features=tuple(features),
        error=_str(obj, "error", where, required=False),
    )


def _decode_request(channel: int, obj: dict[str, Any], where: str) -> Request:
    request_id = _channel_id(channel, where)
    method = _str(obj, "method", where)
    if len(method) > MAX_METHOD_LENGTH:
        raise ProtocolError(f"{where}: 'method' is longer than {MAX_METHOD_LENGTH} characters")
    return Request(request_id, method, _object(obj, "params", where))


def _decode_response(channel: int, obj: dict[str, Any], where: str) -> Response:
    response_id = _channel_id(channel, where)
    if ("result" in obj) == ("error" in obj):
        raise ProtocolError(f"{where}: exactly one of 'result' and 'error' must be present")
    if "result" in obj:
        return Response(response_id, result=obj["result"])
    err = _object(obj, "error", where)
    ewhere = f"{where}: error"
    data = err.get("data")
    if data is not None and not isinstance(data, dict):
        raise ProtocolError(f"{ewhere}: 'data' must be an object or null")
    code = _str(err, "code", ewhere)
    message = _str(err, "message", ewhere, required=False)
    return Response(response_id, error=RemoteError(code, message, data))


def _decode_event(channel: int, obj: dict[str, Any], where: str) -> Event:
    _require_channel_zero(channel, where)
    return Event(_str(obj, "name", where), _object(obj, "data", where))


_DECODERS: dict[int, Callable[[int, dict[str, Any], str], Message]] = {
    Kind.HELLO: _decode_hello,
    Kind.REQUEST: _decode_request,
    Kind.RESPONSE: _decode_response,
    Kind.EVENT: _decode_event,
}


class InvalidParams(ValueError):
    """Request parameters do not match what the method expects (maps to E_INVALID_PARAMS)."""
