"""The host's agent client when the guest goes away under it."""

from __future__ import annotations

import asyncio
import socket

import pytest

from strongbox.errors import AgentError
from strongbox.sandbox.agent_client import AgentClient


def test_reset_during_handshake_leaves_no_unretrieved_exception() -> None:
    """A guest dying with our HELLO unread resets the socket: one error, nothing pending.

    The reset lands in the transport's close waiter as well as in the
    reader. If close() leaves it unretrieved, asyncio prints "Future
    exception was never retrieved" and a traceback whenever that future is
    finalised before its protocol (garbage-collection order): the CLI then
    shows a traceback for a guest that merely failed to boot. The check
    reads the flag asyncio's own report is based on, so it does not depend
    on that order.
    """

    async def scenario() -> None:
        ours, guest = socket.socketpair()
        client = AgentClient(ours)
        handshake = asyncio.create_task(client.handshake(timeout=10))
        await asyncio.sleep(0.05)  # the HELLO is now in the guest's receive queue
        guest.close()  # closed unread: our side sees ECONNRESET
        with pytest.raises(AgentError, match="reset"):
            await handshake
        assert client._writer is not None
        close_waiter = client._writer._protocol._closed  # type: ignore[attr-defined]
        assert close_waiter.done() and close_waiter._log_traceback  # would be reported
        await client.close()
        assert not close_waiter._log_traceback

    asyncio.run(scenario())
