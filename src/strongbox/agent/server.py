"""Server is the agent's event loop: one selector over the host port and local fds.

Single-threaded on purpose: PID 1 must never deadlock, and every piece of
agent state (sessions, streams, processes) is touched from this loop only.
It uses ``select.epoll`` and ``_signal`` directly rather than ``selectors``
and ``signal``: under emulation every imported module costs milliseconds of
boot time, and those wrappers pull in ``enum`` and ``collections``.
Every request is checked against its declaration (:mod:`strongbox.protocol.verbs`)
before its handler runs. Handlers answer at once (return a value), fail (raise
:class:`RequestError`, or :class:`~strongbox.errors.ContainerStateError` from
the status model)
or answer later (``ctx.defer()`` and resolve the :class:`Deferred` from a
callback: an fd turning ready, a child exiting, a ``call_later`` timer
polling kernel state), so several requests can be in flight while, say,
one waits for a process to exit. Nothing here may block for long.

The host may go away (the virtio port reads EOF) and come back (a VM
template woken as a clone, a restarted owner). A HELLO always starts a fresh
session: the frame decoder and stream table are reset and the nonce echoed,
so the host can tell this answer from stale bytes.
"""

from __future__ import annotations

import _signal
import os
import select
import sys
import time

from strongbox import __version__
from strongbox.agent.portio import PortBroken, PortInput, PortOutput
from strongbox.agent.reaper import Reaper
from strongbox.errors import ContainerStateError
from strongbox.protocol import (
    E_INTERNAL,
    E_INVALID_PARAMS,
    E_OS,
    E_STATE,
    E_UNKNOWN_METHOD,
    MAGIC,
    VERSION,
    Event,
    Frame,
    FrameDecoder,
    Hello,
    InvalidParams,
    Kind,
    ProtocolError,
    RemoteError,
    Request,
    Response,
    StreamMux,
    decode_message,
)

TYPE_CHECKING = False  # typing costs ~25 ms of guest boot; mypy still reads the block
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from strongbox.agent.registry import Handler
    from strongbox.protocol.verbs import Verb

_IN = EPOLLIN = select.EPOLLIN
_OUT = EPOLLOUT = select.EPOLLOUT
_READ_SIZE = 256 * 1024
_STREAM_KINDS = (Kind.DATA, Kind.EOF, Kind.CREDIT, Kind.RESET)
_HELLO_START = MAGIC + bytes((VERSION, Kind.HELLO))
#: While the host side is disconnected the port reads EOF at once: re-poll slowly.
_RECONNECT_POLL = 0.02  # seconds


class RequestError(Exception):
    """Raised by a handler to answer with a protocol error code (and optional data)."""

    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class Deferred:
    """A response promised now and delivered later from the loop."""

    def __init__(self, server: Server, request_id: int, method: str) -> None:
        self._server = server
        self._id = request_id
        self.method = method
        self.done = False

    def resolve(self, result: Any = None) -> None:
        if not self.done:
            self.done = True
            self._server.send(Response(self._id, result=result).encode())

    def reject(self, code: str, message: str, data: dict[str, Any] | None = None) -> None:
        if not self.done:
            self.done = True
            self._server.send(Response(self._id, error=RemoteError(code, message, data)).encode())


class Context:
    """What a handler gets besides its params."""

    def __init__(self, server: Server, request: Request) -> None:
        self.server = server
        self.request = request
        self.deferred: Deferred | None = None

    def defer(self) -> Deferred:
        self.deferred = Deferred(self.server, self.request.id, self.request.method)
        return self.deferred


class Server:
    """The agent's RPC server over one byte-stream fd."""

    def __init__(self, fd: int, handlers: dict[str, tuple[Verb, Handler]],
                 log: Callable[[str], None]) -> None:
        self.fd = fd
        self.handlers = handlers
        self.log = log
        self.decoder = FrameDecoder()
        self.mux = StreamMux()
        self.stream_sinks: dict[int, Callable[[Any], None]] = {}
        self.reaper = Reaper()
        self.sessions = 0
        #: Not None while skipping garbage up to the next HELLO (holds a partial match).
        self._resync: bytes | None = None
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._out = PortOutput(fd)
        self._in = PortInput(fd)
        self._running = True
        self._soon: list[Callable[[], None]] = []
        #: (monotonic deadline, callback); few at a time, so a list scanned each turn.
        self._timers: list[tuple[float, Callable[[], None]]] = []
        self._after_flush: list[Callable[[], None]] = []
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        _signal.signal(_signal.SIGCHLD, _ignore_signal)
        self.watch(self._wake_r, _IN, self._on_wakeup)
        self.watch(fd, _IN, self._on_port)
        self._port_events = _IN

    # --- loop plumbing used by handlers ------------------------------------
    def watch(self, fd: int, events: int, callback: Callable[[int], None]) -> None:
        """Call ``callback(mask)`` when ``fd`` is ready for ``events`` (EPOLLIN/EPOLLOUT)."""
        if fd in self._callbacks:
            self._epoll.modify(fd, events)
        else:
            self._epoll.register(fd, events)
        self._callbacks[fd] = callback

    def unwatch(self, fd: int) -> None:
        if self._callbacks.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except OSError:
                pass

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        self.watch(fd, _IN, lambda _mask: callback())

    def remove_reader(self, fd: int) -> None:
        self.unwatch(fd)

    def call_soon(self, fn: Callable[[], None]) -> None:
        self._soon.append(fn)

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` from the loop once ``delay`` seconds have passed (to poll kernel state)."""
        self._timers.append((time.monotonic() + delay, fn))

    def after_flush(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once everything queued for the host has been written."""
        self._after_flush.append(fn)

    def send(self, data: bytes) -> None:
        self._out.append(data)

    def send_event(self, name: str, data: dict[str, Any]) -> None:
        self.send(Event(name, data).encode())

    def stop(self) -> None:
        self._running = False

    # --- the loop ----------------------------------------------------------
    def serve(self) -> None:
        while self._running:
            self._pump_streams()
            if self._out and self.fd in self._callbacks:
                self._write_out()  # most turns the port takes it now: no poll for it
            self._update_interest()
            port_watched = self.fd in self._callbacks
            timeout = 0 if self._soon else (-1 if port_watched else _RECONNECT_POLL)
            if self._timers and timeout != 0:
                wait = max(0.0, min(t for t, _ in self._timers) - time.monotonic())
                timeout = wait if timeout < 0 else min(timeout, wait)
            try:
                ready = self._epoll.poll(timeout)
            except InterruptedError:
                ready = []
            for fd, mask in ready:
                callback = self._callbacks.get(fd)
                if callback is not None:
                    callback(mask)
            if self.fd not in self._callbacks:
                self._try_reconnect()
            soon, self._soon = self._soon, []
            for fn in soon:
                fn()
            if self._timers:
                self._run_timers()

    def _run_timers(self) -> None:
        now = time.monotonic()
        due = [fn for t, fn in self._timers if t <= now]
        if due:
            self._timers = [(t, fn) for t, fn in self._timers if t > now]
            for fn in due:
                try:
                    fn()
                except Exception as exc:  # a handler's poller must not take PID 1 down
                    self.log(f"agent: timer callback failed: {exc!r}")

    def _update_interest(self) -> None:
        if self.fd in self._callbacks:
            want = _IN | (_OUT if self._out else 0)
            if want != self._port_events:
                self._epoll.modify(self.fd, want)
                self._port_events = want
        if not self._out and self._after_flush:
            pending, self._after_flush = self._after_flush, []
            for fn in pending:
                fn()

    def _pump_streams(self) -> None:
        if self.mux.has_outgoing():
            self._out.extend(self.mux.outgoing_parts())

    def _on_wakeup(self, _mask: int) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass
        self.reaper.reap()

    def _on_port(self, mask: int) -> None:
        if mask & (_IN | select.EPOLLHUP | select.EPOLLERR):
            data: bytes | memoryview | None
            try:
                data = self._in.read()
            except OSError as exc:
                self.log(f"agent: port read failed: {exc}")
                data = b""
            if data is not None and not data:
                self._disconnected()
                return
            if data:
                self._feed(data)
        if mask & _OUT and self._out:
            self._write_out()

    def _write_out(self) -> None:
        try:
            self._out.flush()
        except PortBroken:
            self._disconnected()

    def _disconnected(self) -> None:
        """Host went away: stop polling the port (it would read EOF in a loop)."""
        self.remove_reader(self.fd)
        self._out.clear()

    def _try_reconnect(self) -> None:
        try:
            data = os.read(self.fd, _READ_SIZE)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            return
        if data == b"":
            return
        self.watch(self.fd, _IN, self._on_port)
        self._port_events = _IN
        if data:
            self._feed(data)

    # --- frames --------------------------------------------------------------
    def _feed(self, data: bytes | memoryview) -> None:
        """Decode what the port gave; ``data`` may be a view of the read buffer, so it
        is copied (by the decoder, or here when resynchronising) before the next read."""
        if self._resync is not None:
            data = self._find_hello(self._resync + bytes(data))
            if not data:
                return
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as exc:
            # Garbage (a previous host's half-written frame, a bug): drop it
            # and look for the start of the next HELLO, which begins a session.
            self.log(f"agent: protocol error from host: {exc}")
            self.decoder = FrameDecoder()
            self._resync = b""
            rest = self._find_hello(bytes(data[2:]))
            if rest:
                self._feed(rest)
            return
        for frame in frames:
            try:
                self._dispatch(frame)
            except ProtocolError as exc:
                self.log(f"agent: protocol error from host: {exc}")

    def _find_hello(self, data: bytes) -> bytes:
        """Bytes from the next HELLO header on; keep a tail in case it is split."""
        at = data.find(_HELLO_START)
        if at < 0:
            self._resync = data[-(len(_HELLO_START) - 1):]
            return b""
        self._resync = None
        return data[at:]

    def _dispatch(self, frame: Frame) -> None:
        if frame.kind in _STREAM_KINDS:
            for event in self.mux.receive(frame):
                sink = self.stream_sinks.get(event.stream_id)
                if sink is not None:
                    sink(event)
            return
        message = decode_message(frame)
        if isinstance(message, Hello):
            self._hello(message)
        elif isinstance(message, Request):
            self._request(message)

    def _hello(self, hello: Hello) -> None:
        """A new host session: forget the old one's streams and unsent output."""
        self.sessions += 1
        error = ""
        if hello.version != VERSION:
            error = f"agent speaks protocol version {VERSION}, host sent {hello.version}"
        self.mux = StreamMux()
        self.stream_sinks.clear()
        self._out.clear()
        self.send(Hello(VERSION, hello.nonce, "agent", f"strongbox-agent/{__version__}",
                        ("streams",), error).encode())

    def _request(self, request: Request) -> None:
        entry = self.handlers.get(request.method)
        if entry is None:
            self._error(request.id, E_UNKNOWN_METHOD, f"unknown method {request.method!r}")
            return
        verb, handler = entry
        ctx = Context(self, request)
        try:
            verb.check(request.params)
            result = handler(ctx, request.params)
        except RequestError as exc:
            self._error(request.id, exc.code, exc.message, exc.data)
            return
        except ContainerStateError as exc:
            self._error(request.id, E_STATE, str(exc),
                        {"status": exc.current, "required": list(exc.required)})
            return
        except InvalidParams as exc:
            self._error(request.id, E_INVALID_PARAMS, str(exc))
            return
        except OSError as exc:
            self._error(request.id, E_OS, str(exc))
            return
        except Exception as exc:  # a handler bug must not take PID 1 down
            self.log(f"agent: {request.method} failed: {exc!r}")
            self._error(request.id, E_INTERNAL, f"{type(exc).__name__}: {exc}")
            return
        if ctx.deferred is None:
            self.send(Response(request.id, result=result).encode())

    def _error(self, request_id: int, code: str, message: str,
               data: dict[str, Any] | None = None) -> None:
        self.send(Response(request_id, error=RemoteError(code, message, data)).encode())


def _ignore_signal(signum: int, frame: object) -> None:
    """SIGCHLD needs a handler (not SIG_IGN) so that the wakeup fd fires and exits stay waitable."""


def console_log(message: str) -> None:
    """Write one line to the guest console (the VM's log file on the host)."""
    try:
        sys.stderr.write(f"[{time.clock_gettime(time.CLOCK_BOOTTIME):9.3f}] {message}\n")
        sys.stderr.flush()
    except OSError:
        pass
