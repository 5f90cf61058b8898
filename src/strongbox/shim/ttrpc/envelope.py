"""The envelope is the protobuf message around every payload: ttrpc.Request or ttrpc.Response.

The frame layer moves bytes; the service layer marshals its own messages into
``payload``. This module sits between them and is the only user of the generated
envelope classes (``proto/ttrpc_pb2``), so client and server agree on:

- metadata: a key with several values is sent as several KeyValue entries, in
  order, and read back into ``dict[str, list[str]]`` (Go's ``ttrpc.MD``);
- timeouts: ``timeout_nano`` is the time the client still had, 0 for none;
- statuses: a Response always carries ``status`` (code 0 on success), the way
  the Go server marshals it (``0a 00`` for OK), so our bytes match theirs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from google.protobuf.message import DecodeError

from .proto.ttrpc_pb2 import KeyValue, Request, Response
from .status import INTERNAL, INVALID_ARGUMENT, OK, TtrpcError

Metadata = Mapping[str, str | Iterable[str]]
"""What callers pass: one value or several per key."""

_NANOS = 1_000_000_000


def encode_request(
    service: str,
    method: str,
    payload: bytes,
    *,
    timeout: float | None = None,
    metadata: Metadata | None = None,
) -> bytes:
    """A marshalled ttrpc.Request; ``timeout`` in seconds becomes ``timeout_nano``."""
    request = Request(service=service, method=method, payload=payload)
    if timeout is not None:
        # At least 1 ns: 0 would mean "no deadline" to the server.
        request.timeout_nano = max(1, int(timeout * _NANOS))
    for key, values in (metadata or {}).items():
        for value in [values] if isinstance(values, str) else values:
            request.metadata.append(KeyValue(key=key, value=value))
    return request.SerializeToString()


def decode_request(data: bytes) -> Request:
    """Parse a Request frame's data; INVALID_ARGUMENT (Go's wording) if it is not one."""
    request = Request()
    try:
        request.ParseFromString(data)
    except DecodeError as exc:
        raise TtrpcError(INVALID_ARGUMENT, f"unmarshal request error: {exc}") from exc
    return request


def request_metadata(request: Request) -> dict[str, list[str]]:
    """The request's metadata, values of a repeated key in the order they were sent."""
    metadata: dict[str, list[str]] = {}
    for entry in request.metadata:
        metadata.setdefault(entry.key, []).append(entry.value)
    return metadata


def timeout_seconds(request: Request) -> float | None:
    """The client's remaining time in seconds, None without one (negative: already late)."""
    if request.timeout_nano == 0:
        return None
    return request.timeout_nano / _NANOS


def encode_response(payload: bytes = b"", error: TtrpcError | None = None) -> bytes:
    """A marshalled ttrpc.Response: ``payload`` on success, only the status on error."""
    response = Response()
    response.status.SetInParent()
    if error is None:
        response.payload = payload
    else:
        response.status.code = error.code
        response.status.message = error.message
    return response.SerializeToString()


def decode_response(data: bytes) -> bytes:
    """The payload of a successful Response; raises TtrpcError with a non-OK status."""
    response = Response()
    try:
        response.ParseFromString(data)
    except DecodeError as exc:
        raise TtrpcError(INTERNAL, f"ttrpc: unmarshal response error: {exc}") from exc
    if response.status.code != OK:
        raise TtrpcError(response.status.code, response.status.message)
    return response.payload
