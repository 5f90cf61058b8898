"""Control is the channel between CLI commands and a container's monitor.

A unix SOCK_SEQPACKET socket in the container's state directory: every
message is one packet holding one JSON object, optionally with file
descriptors attached (SCM_RIGHTS) — ``exec`` hands its stdio to the monitor
that way. A request is answered by one response ``{"ok": true, ...}`` or
``{"ok": false, "error": "...", "kind": "..."}``; ``exec`` keeps its
connection open for signals and resizes one way and the exit status the
other.

Socket paths under a deep ``--root`` can exceed the 108 bytes a unix address
may hold, so both ends go through ``/proc/self/fd/<dir fd>/monitor.sock``.

On the client's side every OSError (the socket missing, refused, reset, a
broken pipe because a forced delete took the monitor away mid-request) is a
:class:`MonitorUnreachable`: one line, never a traceback.

The client's side is on the path of every CLI verb, so what only the
monitor's side uses (threads, the event-loop bridge) is imported there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from strongbox.errors import StrongboxError

TYPE_CHECKING = False  # `typing` and `asyncio` cost a CLI verb milliseconds; checkers see them
if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable
    from typing import Any

#: Room for the largest request the guest accepts (an exec's process: one agent
#: message, protocol MAX_PAYLOAD = 1 MiB) with its JSON wrapping.
MAX_MESSAGE = 2 << 20
MAX_FDS = 8
#: SO_SNDBUFFORCE (Linux): a send buffer above net.core.wmem_max, for root.
_SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)


class ControlError(StrongboxError):
    """The monitor answered with an error, or could not be reached."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


class MonitorUnreachable(ControlError):
    """Nobody answers on the control socket (the monitor is gone or wedged)."""


@contextlib.contextmanager
def _short_path(path: Path) -> Iterator[str]:
    fd = os.open(path.parent, os.O_PATH | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _room_for_one_message(sock: socket.socket) -> None:
    """A SOCK_SEQPACKET message must fit the sender's buffer whole, and the default
    (about 208 KiB) is smaller than a large exec: make room for MAX_MESSAGE."""
    for option in (_SO_SNDBUFFORCE, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, MAX_MESSAGE + 65536)
            return
        except OSError:
            continue


class Connection:
    """One control connection: JSON packets with optional fds."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        _room_for_one_message(sock)

    def send(self, message: dict[str, Any], fds: list[int] | tuple[int, ...] = ()) -> None:
        data = json.dumps(message).encode()
        if len(data) > MAX_MESSAGE:
            raise ControlError("control message too large")
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.sendall(data)

    def recv(self) -> tuple[dict[str, Any] | None, list[int]]:
        """The next message and its fds; (None, []) when the peer closed."""
        data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, MAX_FDS)
        if not data:
            for fd in fds:
                os.close(fd)
            return None, []
        try:
            message = json.loads(data)
        except ValueError as exc:
            for fd in fds:
                os.close(fd)
            raise ControlError(f"malformed control message: {exc}") from exc
        if not isinstance(message, dict):
            for fd in fds:
                os.close(fd)
            raise ControlError("malformed control message: not an object")
        return message, fds

    def close(self) -> None:
        self.sock.close()

    def peer_pid(self) -> int:
        """The pid of the process at the other end (the kernel's word: SO_PEERCRED)."""
        import struct

        creds = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                     struct.calcsize("3i"))
        pid: int = struct.unpack("3i", creds)[0]
        return pid


if TYPE_CHECKING:
    Handler = Callable[[Connection, dict[str, Any], list[int]], "dict[str, Any] | None"]


class ControlServer:
    """The monitor's side: a thread per connection, requests run on the event loop.

    Threads keep fd-passing simple (blocking ``recvmsg``); every request is
    executed by ``handler`` inside a worker thread, which bridges to the
    asyncio loop with ``run_coroutine_threadsafe`` where it needs the VM.
    """

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        with _short_path(path) as address:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(address)
            self._sock.bind(address)
        os.chmod(path, 0o600)
        self._sock.listen(16)
        self._closed = False
        import threading

        self._thread = threading.Thread(target=self._accept, name="control", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            import threading

            threading.Thread(target=self._serve, args=(Connection(sock),), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        try:
            try:
                message, fds = conn.recv()
            except ControlError as exc:
                conn.send({"ok": False, "error": str(exc), "kind": type(exc).__name__})
                return
            if message is None:
                return
            try:
                response = self.handler(conn, message, fds)
            except StrongboxError as exc:
                response = {"ok": False, "error": str(exc), "kind": type(exc).__name__}
            except Exception as exc:  # a monitor bug must not kill the monitor
                response = {"ok": False, "error": f"internal error: {exc!r}",
                            "kind": "internal"}
            if response is not None:
                conn.send(response)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def connect(path: Path, timeout: float) -> Connection:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        with _short_path(path) as address:
            sock.connect(address)
    except OSError as exc:  # gone, refused, timed out, or the directory itself is gone
        sock.close()
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise MonitorUnreachable(f"the container's monitor does not answer ({reason})") \
            from exc
    return Connection(sock)


def call(path: Path, request: dict[str, Any], *, fds: tuple[int, ...] = (),
         timeout: float = 30.0) -> dict[str, Any]:
    """One request, one response; raises ControlError for an error answer."""
    conn = connect(path, timeout)
    try:
        conn.send(request, fds)
        try:
            response, extra = conn.recv()
        except TimeoutError as exc:
            raise MonitorUnreachable(f"the container's monitor did not answer {request['op']} "
                                     f"within {timeout:g}s") from exc
        for fd in extra:
            os.close(fd)
    except OSError as exc:  # a reset or broken pipe: the monitor went away mid-request
        raise MonitorUnreachable(f"lost the container's monitor ({exc.strerror or exc})") \
            from exc
    finally:
        conn.close()
    if response is None:
        raise MonitorUnreachable("the container's monitor closed the connection")
    if not response.get("ok"):
        raise ControlError(str(response.get("error", "unknown error")),
                           str(response.get("kind", "error")))
    return response


def run_on_loop(loop: asyncio.AbstractEventLoop, coro: Any, timeout: float | None = None) -> Any:
    """From a control thread: run ``coro`` on the monitor's loop and wait for it."""
    import asyncio

    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)
