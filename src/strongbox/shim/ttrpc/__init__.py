"""ttrpc is the RPC protocol containerd speaks to its shims: gRPC's model on raw framing.

containerd 1.6 (vendoring containerd/ttrpc v1.1.2) calls the shim's Task service
and takes its events over ttrpc on unix sockets. This package implements the
unary subset on asyncio: ``Server`` for the shim's socket (handed over as fd 3),
``Client`` for calls out to containerd's events service.

Layers, bottom up (shared/reference/containerd-shim-v2.md section 2)::

    frame.py     10-byte header (length, stream id, type, flags) + data, 4 MiB max
    envelope.py  protobuf ttrpc.Request / ttrpc.Response around each payload
                 (generated from proto/ttrpc.proto, proto/google/rpc/status.proto)
    status.py    gRPC status codes and TtrpcError, the one error a call ends with
    server.py    Server, RequestContext, Handler; client.py: Client

A call is one Request frame from the client on a fresh odd stream id and one
Response frame back on the same id; many calls share a connection and complete
in any order. Handlers and callers exchange raw payload bytes (the service layer
owns its messages), or protobuf messages through ``register_typed`` and
``call_typed``. Streaming (ttrpc 1.2 Data frames) is not implemented: containerd
1.6 never uses it.
"""

from .client import Client
from .frame import (
    FLAG_NO_DATA,
    FLAG_REMOTE_CLOSED,
    FLAG_REMOTE_OPEN,
    MAX_MESSAGE,
    MESSAGE_DATA,
    MESSAGE_REQUEST,
    MESSAGE_RESPONSE,
    Frame,
    FramingError,
    MessageTooLarge,
)
from .server import Handler, RequestContext, Server, TypedHandler, typed
from .status import TtrpcError

__all__ = [
    "FLAG_NO_DATA",
    "FLAG_REMOTE_CLOSED",
    "FLAG_REMOTE_OPEN",
    "MAX_MESSAGE",
    "MESSAGE_DATA",
    "MESSAGE_REQUEST",
    "MESSAGE_RESPONSE",
    "Client",
    "Frame",
    "FramingError",
    "Handler",
    "MessageTooLarge",
    "RequestContext",
    "Server",
    "TtrpcError",
    "TypedHandler",
    "typed",
]
