"""The CLI's side of the control socket when the monitor goes away mid-request.

A ``delete --force`` may take a monitor away at any instant of another
command's request (issue 11: ``exec`` racing it died with a BrokenPipeError
traceback). Whatever the instant (before the request is sent, after it was
read, between the answer and the exit status), ``control.call`` and ``exec``
must fail with one line naming the container, never an OSError. The peer
here is a raw SOCK_SEQPACKET listener that closes when told to: no monitor,
no VM.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from strongbox.errors import StrongboxError
from strongbox.runtime import control, execclient
from strongbox.runtime.state import StateStore

CID = "c1"
#: What the peer does with one connection before it closes it.
Behaviour = Callable[[socket.socket], None]


def close_at_once(sock: socket.socket) -> None:
    """Gone before the request arrives: the client's send meets a closed peer."""


def read_then_close(sock: socket.socket) -> None:
    """Read the request (and close its fds), then go without answering."""
    _msg, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 8)
    for fd in fds:
        os.close(fd)


def answer_then_close(sock: socket.socket) -> None:
    """An exec's first answer, then gone before the exit status."""
    read_then_close(sock)
    sock.send(b'{"ok": true, "exec_id": "e1"}')


class Peer:
    """A listener on the container's socket path that serves each connection one way."""

    def __init__(self, path: Path, behaviour: Behaviour) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.behaviour = behaviour
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    self.behaviour(conn)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "root")
    store.dir(CID).mkdir(parents=True)
    return store


@pytest.fixture
def peer(store: StateStore) -> Iterator[Callable[[Behaviour], Peer]]:
    peers: list[Peer] = []

    def start(behaviour: Behaviour) -> Peer:
        peers.append(Peer(store.socket_path(CID), behaviour))
        return peers[-1]

    yield start
    for p in peers:
        p.close()


@pytest.mark.parametrize("behaviour", [close_at_once, read_then_close],
                         ids=["before-the-request", "after-reading-it"])
def test_call_to_a_monitor_that_goes_away_is_monitor_unreachable(
        store: StateStore, peer: Callable[[Behaviour], Peer], behaviour: Behaviour) -> None:
    peer(behaviour)
    for _ in range(30):  # the close races the send: both orders must give the same error
        with pytest.raises(control.MonitorUnreachable) as info:
            control.call(store.socket_path(CID), {"op": "status"}, timeout=5)
        assert "\n" not in str(info.value)


def test_call_without_a_directory_is_monitor_unreachable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(control.MonitorUnreachable, match="does not answer"):
        control.call(tmp_path / "file" / "monitor.sock", {"op": "status"}, timeout=1)


def _exec(store: StateStore) -> int:
    return execclient.exec_process(store, CID, {"args": ["true"]}, detach=False,
                                   pid_file=None, console_socket=None)


@pytest.mark.parametrize("behaviour", [close_at_once, read_then_close, answer_then_close],
                         ids=["before-the-request", "after-reading-it", "before-the-exit"])
def test_exec_whose_monitor_goes_away_is_one_line_naming_the_container(
        store: StateStore, peer: Callable[[Behaviour], Peer], behaviour: Behaviour) -> None:
    peer(behaviour)
    for _ in range(20):
        with pytest.raises(execclient.MonitorGone) as info:
            _exec(store)
        assert str(info.value) == f"container {CID}: its monitor went away (deleted?)"
        assert isinstance(info.value, StrongboxError)


def test_exec_without_a_monitor_names_the_container(store: StateStore) -> None:
    with pytest.raises(execclient.MonitorGone) as info:
        _exec(store)
    assert str(info.value).startswith(f"container {CID}: the container's monitor does not "
                                      "answer (")
