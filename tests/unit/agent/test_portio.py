"""The agent's port reads and writes, over a socketpair standing in for the virtio port."""

from __future__ import annotations

import os
import socket

import pytest

from strongbox.agent.portio import PortBroken, PortInput, PortOutput


def test_output_keeps_order_across_partial_writes() -> None:
    host, guest = socket.socketpair()
    guest.setblocking(False)
    guest.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # many short writes
    out = PortOutput(guest.fileno())
    items = [os.urandom(n) for n in (16, 300_000, 1, 0, 70_000, 16)]
    for item in items:
        out.append(item)
    received = bytearray()
    host.setblocking(False)
    while out:
        out.flush()
        try:
            while chunk := host.recv(1 << 20):
                received += chunk
        except BlockingIOError:
            pass
    host.setblocking(True)
    guest.close()
    while chunk := host.recv(1 << 20):
        received += chunk
    host.close()
    assert bytes(received) == b"".join(items)


def test_output_to_a_closed_port_is_broken() -> None:
    host, guest = socket.socketpair()
    host.close()
    out = PortOutput(guest.fileno())
    out.append(b"x" * 10)
    with pytest.raises(PortBroken):
        out.flush()
        out.flush()  # the first write may still be taken before the reset is seen
    guest.close()


def test_input_reads_everything_available_into_one_view_then_eof() -> None:
    host, guest = socket.socketpair()
    guest.setblocking(False)
    port = PortInput(guest.fileno())
    assert port.read() is None  # nothing yet: not an end of file
    data = os.urandom(100_000)
    host.sendall(data)
    got = bytearray()
    while len(got) < len(data):
        view = port.read()
        if view is not None:
            got += view
    host.close()
    assert bytes(got) == data
    view = port.read()
    assert view is not None and len(view) == 0
    guest.close()
