"""Client makes ttrpc calls over one unix socket connection, many at a time.

Modelled on containerd/ttrpc ``client.go``: stream ids are odd, 1, 3, 5, ...;
each call registers a future under its stream id before its Request frame is
written, and one reader task hands every Response to the future of its stream.
So calls complete in whatever order the server answers them.

- A timeout is sent as ``timeout_nano`` (the server cancels its handler too) and
  enforced here: the call raises DEADLINE_EXCEEDED and forgets its stream, so a
  late response is dropped. A cancelled call is forgotten the same way.
- An oversized or undecodable response fails only its own call.
- When the connection is lost every pending and later call fails with
  UNAVAILABLE "ttrpc: connection lost: ..."; after ``close()`` they fail with
  UNAVAILABLE "ttrpc: client closed". The shim uses this client to publish
  events to containerd (TTRPC_ADDRESS) and tests use it against the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from types import TracebackType
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from .envelope import Metadata, decode_response, encode_request
from .frame import (
    MAX_STREAM_ID,
    MESSAGE_REQUEST,
    MESSAGE_RESPONSE,
    FramingError,
    MessageTooLarge,
    encode_frame,
    read_frame,
)
from .status import INTERNAL, TtrpcError, deadline_exceeded, unavailable

log = logging.getLogger("strongbox.shim.ttrpc")

M = TypeVar("M", bound=Message)

_UNIX_SCHEME = "unix://"


class Client:
    """One ttrpc connection; use ``await Client.connect(address)``, then ``call``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Take over a connected stream pair; ``connect`` is the usual way in."""
        self._reader = reader
        self._writer = writer
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._next_stream_id = 1
        self._write_lock = asyncio.Lock()
        self._error: TtrpcError | None = None
        self._reader_task = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(
        cls, address: str | os.PathLike[str] | socket.socket, *, timeout: float | None = None
    ) -> Client:
        """Connect to a unix socket path, a ``unix://`` address, or adopt a connected socket.

        Failure to connect raises UNAVAILABLE, like a call on a lost connection.
        """
        if isinstance(address, socket.socket):
            reader, writer = await asyncio.open_unix_connection(sock=address)
            return cls(reader, writer)
        path = os.fspath(address)
        if path.startswith(_UNIX_SCHEME):
            path = path[len(_UNIX_SCHEME):]
        elif "://" in path:
            raise ValueError(f"ttrpc: unsupported address {path!r}: only unix sockets")
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError as exc:
            raise unavailable(f"ttrpc: connect {path}: timed out after {timeout}s") from exc
        except OSError as exc:
            raise unavailable(f"ttrpc: connect {path}: {exc.strerror or exc}") from exc
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        """True once the client was closed or its connection was lost."""
        return self._error is not None

    async def call(
        self,
        service: str,
        method: str,
        payload: bytes,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> bytes:
        """Call ``service``/``method`` with a marshalled request; the marshalled response.

        Raises TtrpcError: the server's status, DEADLINE_EXCEEDED after ``timeout``
        seconds, RESOURCE_EXHAUSTED for a request over MAX_MESSAGE (not sent),
        UNAVAILABLE when the connection is closed or lost.
        """
        self._check_open()
        if timeout is not None and timeout <= 0:
            raise deadline_exceeded("context deadline exceeded")
        stream_id = self._allocate_stream_id()
        data = encode_request(service, method, payload, timeout=timeout, metadata=metadata)
        frame = encode_frame(stream_id, MESSAGE_REQUEST, data)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = future
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                await self._send(frame)
                return await future
        except TimeoutError:
            if scope.expired():
                raise deadline_exceeded("context deadline exceeded") from None
            raise
        finally:
            self._pending.pop(stream_id, None)

    async def call_typed(
        self,
        service: str,
        method: str,
        request: Message,
        response_type: type[M],
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> M:
        """``call`` with protobuf messages: marshal ``request``, parse a ``response_type``."""
        data = await self.call(service, method, request.SerializeToString(),
                               timeout=timeout, metadata=metadata)
        response = response_type()
        try:
            response.ParseFromString(data)
        except DecodeError as exc:
            raise TtrpcError(INTERNAL, f"ttrpc: error unmarshalling response: {exc}") from exc
        return response

    async def close(self) -> None:
        """Hang up; pending and later calls fail with UNAVAILABLE "ttrpc: client closed"."""
        self._fail(unavailable("ttrpc: client closed"))
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass
        self._reader_task.cancel()
        await asyncio.gather(self._reader_task, return_exceptions=True)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._error is not None:
            raise TtrpcError(self._error.code, self._error.message)

    def _allocate_stream_id(self) -> int:
        # Wraps like Go's uint32 counter, skipping ids still in flight.
        while True:
            stream_id = self._next_stream_id
            self._next_stream_id = stream_id + 2 if stream_id + 2 <= MAX_STREAM_ID else 1
            if stream_id not in self._pending:
                return stream_id

    async def _send(self, frame: bytes) -> None:
        async with self._write_lock:
            self._check_open()
            try:
                # write() queues the whole frame at once, so even a call cancelled
                # during drain() never leaves half a frame on the wire.
                self._writer.write(frame)
                await self._writer.drain()
            except OSError as exc:
                self._fail(unavailable(f"ttrpc: connection lost: {exc}"))
                self._check_open()

    async def _read_loop(self) -> None:
        reason = "closed by the server"
        try:
            while True:
                try:
                    frame = await read_frame(self._reader)
                except MessageTooLarge as exc:
                    self._deliver(exc.stream_id, error=exc)
                    continue
                if frame is None:
                    break
                if frame.message_type != MESSAGE_RESPONSE:
                    log.debug("ttrpc: ignoring message type %d on stream %d",
                              frame.message_type, frame.stream_id)
                    continue
                try:
                    payload = decode_response(frame.data)
                except TtrpcError as exc:
                    self._deliver(frame.stream_id, error=exc)
                else:
                    self._deliver(frame.stream_id, payload=payload)
        except (FramingError, OSError) as exc:
            reason = str(exc)
        finally:
            self._fail(unavailable(f"ttrpc: connection lost: {reason}"))
            if not self._writer.is_closing():
                self._writer.close()

    def _deliver(self, stream_id: int, *, payload: bytes = b"",
                 error: TtrpcError | None = None) -> None:
        future = self._pending.get(stream_id)
        if future is None or future.done():
            # A call that timed out or was cancelled: its answer has nowhere to go.
            log.debug("ttrpc: dropping a response for stream %d: no call waits for it",
                      stream_id)
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(payload)

    def _fail(self, error: TtrpcError) -> None:
        """Record why the client is unusable (first reason wins); fail pending calls."""
        if self._error is None:
            self._error = error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TtrpcError(self._error.code, self._error.message))
