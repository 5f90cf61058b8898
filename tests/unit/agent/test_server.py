"""The agent's server and the host's client, talking over a socketpair on the host.

The agent runs in a child process (it installs signal handlers, as PID 1
does in the guest) with every handler except ``shutdown``, which would
reboot the machine running the tests.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from strongbox.errors import AgentBroken, AgentClosed, AgentRequestError
from strongbox.protocol import E_UNKNOWN_METHOD, Hello
from strongbox.sandbox.agent_client import AgentClient

AGENT = """
import os, sys
from strongbox.agent.handlers import all_handlers
from strongbox.agent.server import Server, console_log
handlers = all_handlers()
del handlers["shutdown"]
Server(int(sys.argv[1]), handlers, console_log).serve()
"""


@pytest.fixture
def agent_socket() -> Iterator[socket.socket]:
    host, guest = socket.socketpair()
    guest.setblocking(False)
    proc = subprocess.Popen([sys.executable, "-c", AGENT, str(guest.fileno())],
                            pass_fds=(guest.fileno(),))
    guest.close()
    yield host
    proc.kill()
    proc.wait()
    host.close()


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_handshake_ping_and_info(agent_socket: socket.socket) -> None:
    async def scenario() -> None:
        client = AgentClient(agent_socket)
        hello = await client.handshake(10)
        assert hello.role == "agent" and "streams" in hello.features
        assert (await client.call("ping"))["pong"] is True
        info = await client.call("guest_info")
        assert info["mem_total_kib"] > info["mem_used_kib"] > 0
        assert info["kernel_release"] and info["cpus"] >= 1
        await client.close()

    _run(scenario())


def test_many_requests_in_flight(agent_socket: socket.socket) -> None:
    async def scenario() -> None:
        client = AgentClient(agent_socket)
        await client.handshake(10)
        results = await asyncio.gather(*(client.call("ping") for _ in range(200)))
        assert all(r["pong"] for r in results)
        await client.close()

    _run(scenario())


def test_unknown_method_is_an_error_not_a_crash(agent_socket: socket.socket) -> None:
    async def scenario() -> None:
        client = AgentClient(agent_socket)
        await client.handshake(10)
        with pytest.raises(AgentRequestError) as info:
            await client.call("no_such_thing")
        assert info.value.code == E_UNKNOWN_METHOD
        assert (await client.call("ping"))["pong"]  # still serving
        await client.close()
        with pytest.raises(AgentClosed):
            await client.call("ping")

    _run(scenario())


def test_garbage_then_new_session(agent_socket: socket.socket) -> None:
    """A broken frame drops the session; a fresh HELLO starts a new one."""
    agent_socket.sendall(b"this is not a frame at all" * 10)

    async def scenario() -> None:
        client = AgentClient(agent_socket)
        await client.handshake(10)
        info = await client.call("guest_info")
        assert info["sessions"] == 1
        await client.close()

    _run(scenario())


def test_version_mismatch_is_refused(agent_socket: socket.socket) -> None:
    agent_socket.sendall(Hello(99, "n1", "host").encode())
    agent_socket.settimeout(10)
    data = agent_socket.recv(4096)
    assert b"agent speaks protocol version 1" in data


def test_peer_disappearing_breaks_pending_calls() -> None:
    host, guest = socket.socketpair()

    async def scenario() -> None:
        client = AgentClient(host)
        handshake = asyncio.create_task(client.handshake(10))
        await asyncio.sleep(0.05)
        guest.close()
        with pytest.raises(AgentBroken):
            await handshake
        await client.close()

    _run(scenario())


def test_container_verbs_on_an_unknown_container(agent_socket: socket.socket) -> None:
    """Every container verb is served, and names the missing container; none crashes."""
    verbs: dict[str, dict[str, object]] = {
        "container_status": {}, "pause_container": {}, "resume_container": {},
        "stats_container": {}, "list_processes": {}, "remove_container": {},
        "update_container": {"resources": {}}, "wait_process": {},
        "exec_process": {"exec_id": "e", "process": {"args": ["true"]}, "stdio": {}}}

    async def scenario() -> None:
        client = AgentClient(agent_socket)
        await client.handshake(10)
        for method, params in verbs.items():
            with pytest.raises(AgentRequestError) as info:
                await client.call(method, {"id": "ghost", **params})
            assert info.value.code == "not_found", method
            assert "'ghost' does not exist" in info.value.remote_message
        with pytest.raises(AgentRequestError) as info:
            await client.call("exec_process", {"id": "ghost", "exec_id": 5})
        assert info.value.code == "invalid_params"
        await client.close()

    _run(scenario())
