"""AgentClient is the host's end of the agent protocol, on asyncio.

One reader task owns the socket's input: it decodes frames and completes
the future of each response (matched by request id, in any order), hands
events to subscribers and stream frames to :class:`AgentStream` objects.
Writes go straight to the transport; stream data is paced by the protocol's
credit windows.

Failure vocabulary (errors.py): :class:`AgentTimeout` when one request got
no answer in time, :class:`AgentBroken` when the connection died under us
(the VM exited, the agent broke the protocol), :class:`AgentClosed` after
we closed it ourselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import socket
from collections.abc import Callable
from typing import Any

from strongbox.errors import (
    AgentBroken,
    AgentClosed,
    AgentError,
    AgentRequestError,
    AgentTimeout,
)
from strongbox.protocol import (
    E_INVALID_PARAMS,
    VERSION,
    Event,
    FrameDecoder,
    Hello,
    InvalidParams,
    Kind,
    ProtocolError,
    Request,
    Response,
    StreamData,
    StreamEof,
    StreamEvent,
    StreamMux,
    StreamReset,
    decode_message,
)
from strongbox.protocol.verbs import Verb
from strongbox.sandbox.pump import ProcessIO

_READ_SIZE = 256 * 1024
#: ``timeout`` for requests that legitimately wait without bound (wait_process).
FOREVER = -1.0
#: ``AgentStream.drain`` returns once less than this is waiting for credit.
_HIGH_WATER = 256 * 1024
EventCallback = Callable[[Event], None]


class AgentStream:
    """One multiplexed byte stream (a process's stdin, stdout or stderr)."""

    def __init__(self, client: AgentClient, stream_id: int) -> None:
        self._client = client
        self.id = stream_id
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._writable = asyncio.Event()
        self._writable.set()
        self.eof = False

    def _deliver(self, event: StreamEvent) -> None:
        if isinstance(event, StreamData):
            self._chunks.put_nowait(event.data)
        elif isinstance(event, StreamEof | StreamReset):
            self._chunks.put_nowait(b"")

    async def read(self) -> bytes:
        """The next chunk, or b"" at end of stream."""
        if self.eof:
            return b""
        data = await self._chunks.get()
        if not data:
            self.eof = True
        else:
            self._client._consumed(self.id, len(data))
        return data

    def write(self, data: bytes) -> None:
        self._client._stream_write(self.id, data)

    async def drain(self) -> None:
        """Wait until the agent has taken most of what was written (flow control)."""
        while self._client._queued(self.id) > _HIGH_WATER:
            self._client._check_usable()
            self._writable.clear()
            await self._writable.wait()

    def close_write(self) -> None:
        self._client._stream_close_write(self.id)


class AgentClient:
    """A connection to one guest agent over a connected stream socket."""

    def __init__(self, sock: socket.socket, *, request_timeout: float = 60.0) -> None:
        self._sock = sock
        self.request_timeout = request_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._decoder = FrameDecoder()
        self._mux = StreamMux()
        self._streams: dict[int, AgentStream] = {}
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._ids = itertools.cycle(range(1, 2**32))
        self._stream_ids = itertools.count(1)
        self._hello: asyncio.Future[Hello] | None = None
        self._subscribers: list[EventCallback] = []
        self._closed = False
        self._broken: AgentError | None = None
        self.peer: Hello | None = None

    # --- connection ------------------------------------------------------
    async def handshake(self, timeout: float) -> Hello:
        """Say HELLO and wait for the agent's answer: the agent is then ready."""
        loop = asyncio.get_running_loop()
        # A buffer limit of a few reads: asyncio pauses the socket past twice its
        # limit, and the 64 KiB default would stop it every few frames.
        self._reader, self._writer = await asyncio.open_unix_connection(
            sock=self._sock, limit=4 * _READ_SIZE)
        self._hello = loop.create_future()
        self._task = asyncio.create_task(self._read_loop(), name="agent-reader")
        nonce = secrets.token_hex(8)
        self._send(Hello(VERSION, nonce, "host", "strongbox").encode())
        try:
            hello = await asyncio.wait_for(asyncio.shield(self._hello), timeout)
        except TimeoutError:
            raise AgentTimeout(f"the guest agent did not answer within {timeout:g}s") from None
        if hello.nonce != nonce:
            raise AgentBroken("the guest agent answered another session's HELLO")
        if hello.error:
            raise AgentBroken(f"the guest agent refused the session: {hello.error}")
        self.peer = hello
        return hello

    def subscribe(self, callback: EventCallback) -> None:
        self._subscribers.append(callback)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fail_all(AgentClosed("the agent connection was closed"))
        if self._writer is not None:
            self._writer.close()
            # A guest that died with our bytes unread resets the socket, and asyncio keeps
            # that error in the transport's close waiter too: unless it is retrieved here,
            # whichever object dies last prints "Future exception was never retrieved".
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    @property
    def broken(self) -> AgentError | None:
        return self._broken

    # --- requests --------------------------------------------------------
    async def call(self, verb: Verb, params: dict[str, Any] | None = None, *,
                   timeout: float | None = None) -> Any:
        """Send one request and wait for its response.

        ``params`` are checked against the verb's declaration first: a request
        the agent would refuse as malformed never leaves the host.
        """
        self._check_usable()
        method, params = verb.name, params or {}
        try:
            verb.check(params)
        except InvalidParams as exc:
            raise AgentRequestError(method, E_INVALID_PARAMS, str(exc)) from None
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (method, future)
        self._send(Request(request_id, method, params).encode())
        limit = self.request_timeout if timeout is None else timeout
        try:
            if limit == FOREVER:
                return await future
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            raise AgentTimeout(f"agent {method}: no answer within {limit:g}s") from None
        finally:
            self._pending.pop(request_id, None)

    # --- streams ---------------------------------------------------------
    def open_stream(self, *, readable: bool, writable: bool) -> AgentStream:
        """Allocate a stream id; tell the agent about it in the request that uses it."""
        stream_id = next(self._stream_ids)
        self._mux.open(stream_id, readable=readable, writable=writable)
        stream = AgentStream(self, stream_id)
        self._streams[stream_id] = stream
        return stream

    def close_stream(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)
        self._mux.close(stream_id)

    def open_process_streams(self, *, terminal: bool, stdin: bool
                             ) -> tuple[ProcessIO, dict[str, Any]]:
        """Streams for a new process, and the ``stdio`` parameter that names them.

        stdout always; stderr unless a terminal carries both outputs; stdin
        only when the caller feeds it.
        """
        streams = {
            "stdin": self.open_stream(readable=False, writable=True) if stdin else None,
            "stdout": self.open_stream(readable=True, writable=False),
            "stderr": None if terminal else self.open_stream(readable=True, writable=False),
        }
        io = ProcessIO(streams["stdin"], streams["stdout"], streams["stderr"], terminal)
        ids: dict[str, Any] = {name: s.id if s is not None else None
                               for name, s in streams.items()}
        return io, {"terminal": terminal, **ids}

    def close_process_streams(self, io: ProcessIO) -> None:
        """Forget the streams of a process that never started."""
        for stream in (io.stdin, io.stdout, io.stderr):
            if isinstance(stream, AgentStream):
                self.close_stream(stream.id)

    def _stream_write(self, stream_id: int, data: bytes) -> None:
        self._mux.write(stream_id, data)
        self._flush_mux()

    def _stream_close_write(self, stream_id: int) -> None:
        self._mux.close_write(stream_id)
        self._flush_mux()

    def _consumed(self, stream_id: int, n: int) -> None:
        self._mux.consumed(stream_id, n)
        self._flush_mux()

    def _queued(self, stream_id: int) -> int:
        try:
            return self._mux.queued(stream_id)
        except KeyError:
            return 0

    def _flush_mux(self) -> None:
        if self._mux.has_outgoing() and self._writer is not None and not self._closed:
            for frame in self._mux.outgoing():
                self._writer.write(frame)
        for stream in self._streams.values():
            if not stream._writable.is_set() and self._queued(stream.id) <= _HIGH_WATER:
                stream._writable.set()

    # --- internals -------------------------------------------------------
    def _check_usable(self) -> None:
        if self._closed:
            raise AgentClosed("the agent connection was closed")
        if self._broken is not None:
            raise self._broken
        if self._writer is None:
            raise AgentClosed("the agent connection is not open yet")

    def _send(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    raise AgentBroken("the guest agent connection was lost")
                for frame in self._decoder.feed(data):
                    self._dispatch(frame)
                self._flush_mux()
        except asyncio.CancelledError:
            raise
        except ProtocolError as exc:
            self._break(AgentBroken(f"the guest agent broke the protocol: {exc}"))
        except AgentBroken as exc:
            self._break(exc)
        except OSError as exc:
            self._break(AgentBroken(f"the guest agent connection failed: {exc.strerror}"))

    def _break(self, error: AgentError) -> None:
        if not self._closed:
            self._broken = error
            self._fail_all(error)

    def _fail_all(self, error: AgentError) -> None:
        if self._hello is not None and not self._hello.done():
            self._hello.set_exception(error)
            self._hello.exception()  # mark retrieved: nobody may be waiting any more
        for _method, future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        for stream in self._streams.values():
            stream._chunks.put_nowait(b"")
            stream._writable.set()

    def _dispatch(self, frame: Any) -> None:
        if frame.kind in (Kind.DATA, Kind.EOF, Kind.CREDIT, Kind.RESET):
            for event in self._mux.receive(frame):
                stream = self._streams.get(event.stream_id)
                if stream is not None:
                    stream._deliver(event)
            return
        message = decode_message(frame)
        if isinstance(message, Response):
            entry = self._pending.get(message.id)
            if entry is None:
                return  # timed out already, or never ours
            method, future = entry
            if future.done():
                return
            if message.error is not None:
                future.set_exception(AgentRequestError(method, message.error.code,
                                                       message.error.message,
                                                       message.error.data))
            else:
                future.set_result(message.result)
        elif isinstance(message, Event):
            for callback in list(self._subscribers):
                callback(message)
        elif isinstance(message, Hello):
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(message)
        else:
            raise ProtocolError(f"unexpected {Kind.name_of(frame.kind)} frame from the agent")
