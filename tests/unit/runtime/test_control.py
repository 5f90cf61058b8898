"""The control channel between CLI commands and a monitor: ControlServer, call, Connection.

Every CLI verb on a created container is one request over this socket, so
its failure modes are the CLI's: an error answer must arrive as a
ControlError carrying the error's kind (the CLI maps it back to the right
message and exit code), a monitor that is gone or wedged must be a
MonitorUnreachable within the timeout (``state`` and ``list`` then fall back
to the record), descriptors passed with ``exec`` must arrive usable, and a
deep ``--root`` must not hit the 108-byte limit of unix socket addresses.
Real sockets in tmp_path; no VM, no root.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from strongbox.errors import ContainerStateError, StrongboxError
from strongbox.runtime import control
from strongbox.runtime.control import (
    Connection,
    ControlError,
    ControlServer,
    MonitorUnreachable,
    call,
)
from tests.framework.fds import open_fds


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that escaped a thread (a server thread must never let one escape)."""
    caught: list[BaseException] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            caught.append(args.exc_value)

    monkeypatch.setattr(threading, "excepthook", hook)
    return caught


Handler = Callable[[Connection, dict[str, Any], list[int]], "dict[str, Any] | None"]
#: serve(handler[, path]) -> the socket path of a running ControlServer
Serve = Callable[..., Path]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start a ControlServer with a handler; every server is closed after the test."""
    servers: list[ControlServer] = []

    def start(handler: Handler, path: Path | None = None) -> Path:
        path = path or tmp_path / f"s{len(servers)}.sock"
        servers.append(ControlServer(path, handler))
        return path

    yield start
    for server in servers:
        server.close()


def _echo(conn: Connection, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
    for fd in fds:
        os.close(fd)
    return {"ok": True, "echo": message, "fds": len(fds)}


# --- round trips -------------------------------------------------------------------------

def test_call_round_trip(serve: Serve) -> None:
    path = serve(_echo)
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600
    reply = call(path, {"op": "status", "x": [1, "two"]}, timeout=5)
    assert reply == {"ok": True, "echo": {"op": "status", "x": [1, "two"]}, "fds": 0}
    # one connection per request: the server keeps serving
    assert call(path, {"op": "again"}, timeout=5)["echo"] == {"op": "again"}


def test_concurrent_calls_are_served_in_parallel(serve: Serve) -> None:
    inside = threading.Barrier(3, timeout=5)

    def handler(conn: Connection, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        inside.wait()  # only passes if all three requests are being handled at once
        return {"ok": True, "n": message["n"]}

    path = serve(handler)
    results: list[int] = []
    threads = [threading.Thread(target=lambda n=n: results.append(
        call(path, {"op": "x", "n": n}, timeout=5)["n"])) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == [0, 1, 2]


def test_error_answer_is_a_control_error_with_its_kind(serve: Serve) -> None:
    path = serve(lambda conn, message, fds: {"ok": False, "error": "no such thing",
                                             "kind": "ContainerNotFound"})
    with pytest.raises(ControlError, match="no such thing") as info:
        call(path, {"op": "x"}, timeout=5)
    assert info.value.kind == "ContainerNotFound"
    assert not isinstance(info.value, MonitorUnreachable)


def test_error_answer_without_details(serve: Serve) -> None:
    path = serve(lambda conn, message, fds: {"ok": False})
    with pytest.raises(ControlError, match="unknown error") as info:
        call(path, {"op": "x"}, timeout=5)
    assert info.value.kind == "error"


def test_handler_raising_a_strongbox_error(serve: Serve) -> None:
    def handler(conn: Connection, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        raise ContainerStateError("running", ("paused",), container_id="c1", operation="resume")

    path = serve(handler)
    with pytest.raises(ControlError) as info:
        call(path, {"op": "resume"}, timeout=5)
    assert info.value.kind == "ContainerStateError"
    assert str(info.value) == "cannot resume container c1: it is running, not paused"


def test_handler_raising_an_unexpected_exception(serve: Serve,
                                                 thread_errors: list[BaseException]) -> None:
    def handler(conn: Connection, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        if message["op"] == "bug":
            raise KeyError("signal")
        return {"ok": True}

    path = serve(handler)
    with pytest.raises(ControlError) as info:
        call(path, {"op": "bug"}, timeout=5)
    assert info.value.kind == "internal"
    assert str(info.value) == "internal error: KeyError('signal')"
    assert call(path, {"op": "fine"}, timeout=5) == {"ok": True}  # the server survived
    assert thread_errors == []


def test_plain_strongbox_error_kind(serve: Serve) -> None:
    def handler(conn: Connection, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        raise StrongboxError("unknown control operation 'frob'")

    path = serve(handler)
    with pytest.raises(ControlError, match="unknown control operation 'frob'") as info:
        call(path, {"op": "frob"}, timeout=5)
    assert info.value.kind == "StrongboxError"


# --- descriptors -------------------------------------------------------------------------

def test_fds_passed_with_a_request_are_usable(serve: Serve) -> None:
    """SCM_RIGHTS: the handler reads from one passed pipe and writes into another."""

    def handler(conn: Connection, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        source, sink = fds
        try:
            data = os.read(source, 100)
            os.write(sink, data.upper())
        finally:
            os.close(source)
            os.close(sink)
        return {"ok": True, "read": data.decode(), "count": len(fds)}

    path = serve(handler)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        os.write(in_w, b"hello")
        reply = call(path, {"op": "pipe"}, fds=(in_r, out_w), timeout=5)
        assert reply == {"ok": True, "read": "hello", "count": 2}
        os.close(out_w)
        out_w = -1
        assert os.read(out_r, 100) == b"HELLO"
        assert os.read(out_r, 100) == b""  # the handler closed its copy: only EOF is left
    finally:
        for fd in (in_r, in_w, out_r, out_w):
            if fd >= 0:
                os.close(fd)


def test_fds_in_an_answer_are_closed_by_call(serve: Serve) -> None:
    """call() has no use for descriptors in a reply: they must not leak."""

    def handler(conn: Connection, message: dict[str, Any], fds: list[int]) -> None:
        r, w = os.pipe()
        try:
            conn.send({"ok": True}, [r, w])
        finally:
            os.close(r)
            os.close(w)
        return None

    path = serve(handler)
    before = open_fds()
    assert call(path, {"op": "x"}, timeout=5) == {"ok": True}
    time.sleep(0.05)
    assert open_fds() <= before


# --- an absent or wedged monitor ---------------------------------------------------------

def test_nobody_listening(tmp_path: Path) -> None:
    with pytest.raises(MonitorUnreachable, match="does not answer"):
        call(tmp_path / "absent.sock", {"op": "status"}, timeout=1)
    # a socket file left by a monitor that died: connection refused
    stale = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.bind(str(stale))
    sock.close()
    with pytest.raises(MonitorUnreachable, match="does not answer"):
        call(stale, {"op": "status"}, timeout=1)


def test_closed_server_is_unreachable_and_removes_its_socket(tmp_path: Path) -> None:
    path = tmp_path / "m.sock"
    server = ControlServer(path, _echo)
    assert call(path, {"op": "x"}, timeout=5)["ok"]
    server.close()
    assert not path.exists()
    with pytest.raises(MonitorUnreachable):
        call(path, {"op": "x"}, timeout=1)
    server.close()  # twice is harmless


def test_server_that_never_answers_times_out(serve: Serve) -> None:
    release = threading.Event()
    finished = threading.Event()

    def handler(conn: Connection, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        release.wait(10)
        finished.set()
        return {"ok": True}

    path = serve(handler)
    started = time.monotonic()
    try:
        with pytest.raises(MonitorUnreachable, match=r"did not answer status within 0\.3s"):
            call(path, {"op": "status"}, timeout=0.3)
        assert time.monotonic() - started < 3
    finally:
        release.set()
    assert finished.wait(5)  # the late answer goes to a closed peer without harm


def test_server_that_closes_without_answering(serve: Serve) -> None:
    path = serve(lambda conn, message, fds: None)
    with pytest.raises(MonitorUnreachable, match="closed the connection"):
        call(path, {"op": "x"}, timeout=5)


# --- addresses and framing ---------------------------------------------------------------

def test_socket_path_longer_than_a_unix_address(tmp_path: Path,
                                                serve: Serve) -> None:
    deep = tmp_path
    while len(str(deep)) < 200:
        deep = deep / ("d" * 40)
    deep.mkdir(parents=True)
    path = deep / "monitor.sock"
    assert len(str(path).encode()) > 108
    serve(_echo, path)
    assert path.exists()
    assert call(path, {"op": "deep"}, timeout=5)["echo"] == {"op": "deep"}


def test_malformed_message_is_a_control_error() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    left, right = Connection(a), Connection(b)
    try:
        a.sendall(b"this is not json")
        with pytest.raises(ControlError, match="malformed control message"):
            right.recv()
        a.sendall(b"[1, 2]")
        with pytest.raises(ControlError, match="not an object"):
            right.recv()
        left.send({"op": "fine"})
        assert right.recv() == ({"op": "fine"}, [])
        left.close()
        assert right.recv() == (None, [])
    finally:
        left.close()
        right.close()


def test_malformed_message_closes_the_fds_it_carried() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    try:
        before = open_fds()
        socket.send_fds(a, [b"{broken"], [r, w])
        with pytest.raises(ControlError):
            Connection(b).recv()
        assert open_fds() == before
    finally:
        for fd in (r, w):
            os.close(fd)
        a.close()
        b.close()


def test_non_object_message_closes_the_fds_it_carried() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    received: set[int] = set()
    try:
        before = open_fds()
        socket.send_fds(a, [b"[1]"], [r, w])
        with pytest.raises(ControlError, match="not an object"):
            Connection(b).recv()
        received = open_fds() - before
        assert not received
    finally:
        for fd in [r, w, *received]:
            os.close(fd)
        a.close()
        b.close()


def test_malformed_answer_is_a_control_error(tmp_path: Path) -> None:
    """A peer that answers with garbage: the caller gets a ControlError, not a crash."""
    path = tmp_path / "raw.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    listener.listen(1)

    def answer_garbage() -> None:
        sock, _ = listener.accept()
        with sock:
            sock.recv(control.MAX_MESSAGE)
            sock.sendall(b"<html>")

    thread = threading.Thread(target=answer_garbage)
    thread.start()
    try:
        with pytest.raises(ControlError, match="malformed control message"):
            call(path, {"op": "x"}, timeout=5)
    finally:
        thread.join(5)
        listener.close()


def _raw_request(path: Path, data: bytes) -> bytes:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(5)
    try:
        sock.connect(str(path))
        sock.sendall(data)
        return sock.recv(control.MAX_MESSAGE)
    finally:
        sock.close()


def test_server_survives_a_malformed_request(serve: Serve,
                                             thread_errors: list[BaseException]) -> None:
    path = serve(_echo)
    _raw_request(path, b"not json at all")
    assert call(path, {"op": "after"}, timeout=5)["echo"] == {"op": "after"}


def test_malformed_request_gets_an_error_answer(serve: Serve,
                                                thread_errors: list[BaseException]) -> None:
    path = serve(_echo)
    raw = _raw_request(path, b"not json at all")
    time.sleep(0.05)
    assert thread_errors == []
    answer = json.loads(raw)
    assert answer["ok"] is False and answer["kind"] == "ControlError"
