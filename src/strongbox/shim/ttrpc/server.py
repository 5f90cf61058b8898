"""Server answers ttrpc calls on a listening unix socket, one asyncio task per request.

Modelled on containerd/ttrpc ``server.go`` and ``services.go``, unary calls only
(what containerd 1.6, with ttrpc v1.1.2, sends):

- A connection is a read loop. Each Request frame becomes its own task, so a
  slow call (Wait blocks until a process exits) never holds up a fast one, and
  responses are written as they complete, one whole frame at a time under a
  per-connection lock.
- Whatever a request gets wrong is answered on its stream and the loop goes on:
  even stream id, re-used stream id, undecodable envelope, oversized frame,
  unknown service or method. Only a broken byte stream (a frame cut short)
  closes the connection, because after it no header can be trusted.
- Handlers map to statuses: TtrpcError -> its code; an expired ``timeout_nano``
  -> DEADLINE_EXCEEDED; anything else -> UNKNOWN with the exception's text, and
  a logged traceback. A response larger than MAX_MESSAGE becomes
  RESOURCE_EXHAUSTED instead of a frame the client would drop.
- When the client half-closes or hangs up, running handlers are not cancelled:
  a half-done Create is worse than a response nobody reads. Their responses go
  out if the peer still reads, and are dropped otherwise.
- ``require_same_user`` is ttrpc's UnixSocketRequireSameUser handshaker, which
  the shim turns on: the peer's SO_PEERCRED uid and gid must be our euid/egid.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from .envelope import (
    decode_request,
    encode_response,
    request_metadata,
    timeout_seconds,
)
from .frame import (
    MAX_MESSAGE,
    MESSAGE_REQUEST,
    MESSAGE_RESPONSE,
    Frame,
    FramingError,
    MessageTooLarge,
    encode_frame,
    oversized_message,
    read_frame,
)
from .proto.ttrpc_pb2 import Request
from .status import (
    INTERNAL,
    RESOURCE_EXHAUSTED,
    UNKNOWN,
    TtrpcError,
    cancelled,
    deadline_exceeded,
    invalid_argument,
    unavailable,
    unimplemented,
)

log = logging.getLogger("strongbox.shim.ttrpc")

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a handler knows about its call besides the payload.

    ``deadline`` is on the event loop's clock (``loop.time()``, i.e. time.monotonic),
    None when the client set no timeout; the server enforces it by cancelling the
    handler, which sees CancelledError at its next await.
    """

    service: str
    method: str
    metadata: dict[str, list[str]]
    deadline: float | None
    stream_id: int

    def time_left(self) -> float | None:
        """Seconds until the deadline (may be negative), None without one."""
        if self.deadline is None:
            return None
        return self.deadline - asyncio.get_running_loop().time()


Handler = Callable[[bytes, RequestContext], Awaitable[bytes]]
"""Raw request payload in, raw response payload out: the service marshals its messages."""

TypedHandler = Callable[[Any, RequestContext], Awaitable[Message]]
"""A handler of decoded messages, as registered with ``register_typed``."""


def typed(
    request_type: type[M], handler: Callable[[M, RequestContext], Awaitable[Message]]
) -> Handler:
    """Wrap a handler of protobuf messages into a raw Handler.

    An undecodable payload fails with INTERNAL "ttrpc: error unmarshalling
    payload", the code and wording of the Go implementation.
    """

    async def raw(payload: bytes, ctx: RequestContext) -> bytes:
        request = request_type()
        try:
            request.ParseFromString(payload)
        except DecodeError as exc:
            raise TtrpcError(INTERNAL, f"ttrpc: error unmarshalling payload: {exc}") from exc
        response = await handler(request, ctx)
        return response.SerializeToString()

    return raw


class Server:
    """A ttrpc server: register services, ``await serve(sock)``, ``await close()``."""

    def __init__(self, *, require_same_user: bool = True, shutdown_timeout: float = 5.0) -> None:
        self._services: dict[str, dict[str, Handler]] = {}
        self._require_same_user = require_same_user
        self._credentials = (os.geteuid(), os.getegid())
        self._shutdown_timeout = shutdown_timeout
        self._listener: asyncio.Server | None = None
        self._connections: dict[_Connection, asyncio.Task[Any] | None] = {}
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False
        self._closed = asyncio.Event()

    @property
    def closing(self) -> bool:
        """True once ``close()`` has begun: new requests get UNAVAILABLE."""
        return self._closing

    def register(self, service: str, methods: Mapping[str, Handler]) -> None:
        """Serve ``methods`` under the fully qualified ``service`` name; each name once."""
        known = self._services.setdefault(service, {})
        for name, handler in methods.items():
            if name in known:
                raise ValueError(f"ttrpc: method {service}/{name} registered twice")
            known[name] = handler

    def register_typed(
        self, service: str, methods: Mapping[str, tuple[type[Message], TypedHandler]]
    ) -> None:
        """Like register, with ``{method: (RequestClass, handler(request, ctx))}``."""
        self.register(service, {name: typed(cls, fn) for name, (cls, fn) in methods.items()})

    async def serve(self, sock: socket.socket) -> None:
        """Accept connections on an already-listening unix socket until ``close()``."""
        if self._listener is not None or self._closing:
            raise RuntimeError("ttrpc: Server.serve() may be called once")
        self._listener = await asyncio.start_unix_server(self._accept, sock=sock)
        try:
            await self._closed.wait()
        finally:
            self._listener.close()

    async def close(self) -> None:
        """Stop accepting, give running handlers ``shutdown_timeout`` s, then hang up.

        Safe to call from a handler (it does not wait for itself), though its own
        response will not get out; call it from outside to let it.
        """
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        if self._listener is not None:
            self._listener.close()
        me = asyncio.current_task()
        running = {task for task in self._handlers if task is not me}
        if running:
            _, late = await asyncio.wait(running, timeout=self._shutdown_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        for conn in self._connections:
            conn.close()
        readers = {t for t in self._connections.values() if t is not None and t is not me}
        if readers:
            _, stuck = await asyncio.wait(readers, timeout=1.0)
            for task in stuck:
                task.cancel()
        self._closed.set()

    def _credentials_ok(self, conn_sock: Any) -> bool:
        ucred = struct.Struct("iII")
        try:
            raw = conn_sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, ucred.size)
        except OSError as exc:
            log.warning("ttrpc: refusing a connection: cannot read its credentials: %s", exc)
            return False
        pid, uid, gid = ucred.unpack(raw)
        if (uid, gid) != self._credentials:
            log.warning("ttrpc: refusing a connection from pid %d uid %d gid %d: "
                        "only uid %d gid %d may connect", pid, uid, gid, *self._credentials)
            return False
        return True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or (
            self._require_same_user and not self._credentials_ok(writer.get_extra_info("socket"))
        ):
            writer.close()
            return
        conn = _Connection(self, reader, writer)
        self._connections[conn] = asyncio.current_task()
        try:
            await conn.run()
        finally:
            del self._connections[conn]

    def _start(self, conn: _Connection, stream_id: int, request: Request) -> None:
        task = asyncio.create_task(self._handle(conn, stream_id, request))
        self._handlers.add(task)
        conn.handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        task.add_done_callback(conn.handlers.discard)

    async def _handle(self, conn: _Connection, stream_id: int, request: Request) -> None:
        payload, error = b"", None
        try:
            payload = await self._call(request, stream_id)
            if not isinstance(payload, bytes | bytearray):
                raise TypeError(f"handler returned {type(payload).__name__}, not bytes")
        except TtrpcError as exc:
            error = exc
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the server is shutting down: no response
            error = cancelled("context canceled")  # the handler's own cancellation
        except Exception as exc:
            log.exception("ttrpc: %s/%s failed", request.service, request.method)
            error = TtrpcError(UNKNOWN, str(exc) or type(exc).__name__)
        await conn.respond(stream_id, bytes(payload), error)

    async def _call(self, request: Request, stream_id: int) -> bytes:
        methods = self._services.get(request.service)
        if methods is None:
            raise unimplemented(f"service {request.service}")
        handler = methods.get(request.method)
        if handler is None:
            raise unimplemented(f"method {request.method}")
        timeout = timeout_seconds(request)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        ctx = RequestContext(request.service, request.method, request_metadata(request),
                             deadline, stream_id)
        if deadline is None:
            return await handler(request.payload, ctx)
        scope = asyncio.timeout_at(deadline)
        try:
            async with scope:
                return await handler(request.payload, ctx)
        except TimeoutError:
            if scope.expired():
                raise deadline_exceeded("context deadline exceeded") from None
            raise


class _Connection:
    """One accepted client: its read loop, its write lock, its running handlers."""

    def __init__(self, server: Server, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.handlers: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()
        self._last_stream_id = 0

    async def run(self) -> None:
        try:
            while (frame := await self._next_frame()) is not None:
                if frame.message_type != MESSAGE_REQUEST:
                    # ttrpc v1.1.2 ignores other types "for future compat"; Data
                    # frames belong to streaming calls, which we do not serve.
                    log.debug("ttrpc: ignoring message type %d on stream %d",
                              frame.message_type, frame.stream_id)
                    continue
                await self._dispatch(frame.stream_id, frame.data)
            # Clean EOF (possibly a half-close): let running handlers answer.
            if self.handlers:
                await asyncio.wait(set(self.handlers))
        except FramingError as exc:
            log.warning("ttrpc: closing a connection: %s", exc)
        except OSError as exc:
            log.debug("ttrpc: connection lost: %s", exc)
        finally:
            self.close()

    async def _next_frame(self) -> Frame | None:
        while True:
            try:
                return await read_frame(self.reader)
            except MessageTooLarge as exc:
                await self.respond(exc.stream_id, b"", exc)

    async def _dispatch(self, stream_id: int, data: bytes) -> None:
        if stream_id % 2 == 0:
            error = invalid_argument("StreamID must be odd for client initiated streams")
        elif stream_id <= self._last_stream_id:
            error = invalid_argument("StreamID cannot be re-used and must increment")
        else:
            self._last_stream_id = stream_id
            try:
                request = decode_request(data)
            except TtrpcError as exc:
                error = exc
            else:
                if not self.server.closing:
                    self.server._start(self, stream_id, request)
                    return
                error = unavailable("ttrpc: server shutting down")
        await self.respond(stream_id, b"", error)

    async def respond(self, stream_id: int, payload: bytes, error: TtrpcError | None) -> None:
        """Write the Response frame; silently dropped when the peer has gone."""
        data = encode_response(payload, error)
        if len(data) > MAX_MESSAGE:
            too_big = TtrpcError(RESOURCE_EXHAUSTED, oversized_message(len(data)))
            data = encode_response(error=too_big)
        frame = encode_frame(stream_id, MESSAGE_RESPONSE, data)
        async with self._write_lock:
            if self.writer.is_closing():
                log.debug("ttrpc: dropping the response on stream %d: connection closed", stream_id)
                return
            try:
                self.writer.write(frame)
                await self.writer.drain()
            except OSError as exc:
                log.debug("ttrpc: dropping the response on stream %d: %s", stream_id, exc)

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
