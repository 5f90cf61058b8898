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
from strongbox.protocol import E_UNKNOWN_METHOD, Hello, verbs
from strongbox.protocol.verbs import Verb
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
        assert (await client.call(verbs.PING))["pong"] is True
        info = await client.call(verbs.GUEST_INFO)
        assert info["mem_total_kib"] > info["mem_used_kib"] > 0
        assert info["kernel_release"] and info["cpus"] >= 1
        await client.close()

    _run(scenario())


def test_many_requests_in_flight(agent_socket: socket.socket) -> None:
    async def scenario() -> None:
        client = AgentClient(agent_socket)
        await client.handshake(10)
        results = await asyncio.gather(*(client.call(verbs.PING) for _ in range(200)))
        assert all(r["pong"] for r in results)
        await client.close()

    _run(scenario())


def test_unknown_method_is_an_error_not_a_crash(agent_socket: socket.socket) -> None:
    async def scenario() -> None:
        client = AgentClient(agent_socket)
        await client.handshake(10)
        with pytest.raises(AgentRequestError) as info:
            await client.call(Verb("no_such_thing"))
        assert info.value.code == E_UNKNOWN_METHOD
        assert (await client.call(verbs.PING))["pong"]  # still serving
        await client.close()
        with pytest.raises(AgentClosed):
            await client.call(verbs.PING)

    _run(scenario())


def test_garbage_then_new_session(agent_socket: socket.socket) -> None:
    """A broken frame drops the session; a fresh HELLO starts a new one."""
    agent_socket.sendall(b"this is not a frame at all" * 10)

    async def scenario() -> None:
        client = AgentClient(agent_socket)
        await client.handshake(10)
        info = await client.call(verbs.GUEST_INFO)
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
    calls: list[tuple[Verb, dict[str, object]]] = [
        (verbs.CONTAINER_STATUS, {}), (verbs.PAUSE_CONTAINER, {}), (verbs.RESUME_CONTAINER, {}),
        (verbs.STATS_CONTAINER, {}), (verbs.LIST_PROCESSES, {}), (verbs.REMOVE_CONTAINER, {}),
        (verbs.UPDATE_CONTAINER, {"resources": {}}), (verbs.WAIT_PROCESS, {}),
        (verbs.EXEC_PROCESS, {"exec_id": "e", "process": {"args": ["true"]},
                              "stdio": {"terminal": False}})]

    async def scenario() -> None:
        client = AgentClient(agent_socket)
        await client.handshake(10)
        for verb, params in calls:
            with pytest.raises(AgentRequestError) as info:
                await client.call(verb, {"id": "ghost", **params})
            assert info.value.code == "not_found", verb
            assert "'ghost' does not exist" in info.value.remote_message
        await client.close()

    _run(scenario())


def test_the_agent_checks_parameters_against_the_declaration(
        agent_socket: socket.socket) -> None:
    """A request the host did not check (a looser declaration) is refused by the agent."""
    loose = Verb("exec_process", {"id": str})

    async def scenario() -> None:
        client = AgentClient(agent_socket)
        await client.handshake(10)
        with pytest.raises(AgentRequestError) as info:
            await client.call(loose, {"id": "ghost", "exec_id": 5})
        assert info.value.code == "invalid_params"
        assert "params.exec_id: expected str, got int" in info.value.remote_message
        with pytest.raises(AgentRequestError) as info:
            await client.call(loose, {"id": "ghost", "exec_id": "e", "process": {},
                                      "stdio": {"terminal": "yes"}})
        assert "params.stdio.terminal: expected bool, got str" in info.value.remote_message
        # The host's own check: a malformed request never leaves.
        with pytest.raises(AgentRequestError, match=r"params\.exec_id: missing"):
            await client.call(verbs.EXEC_PROCESS, {"id": "ghost"})
        assert (await client.call(verbs.PING))["pong"]
        await client.close()

    _run(scenario())
