"""The pool's packets: one JSON object each, fds beside it, EOF as None."""

from __future__ import annotations

import asyncio
import os

import pytest

from strongbox.config import Config, ConfigError, FactoryConfig
from strongbox.errors import SandboxError
from strongbox.sandbox.pool import wire


def test_a_packet_carries_its_fds_and_eof_is_none() -> None:
    async def go() -> None:
        a, b = wire.pair()
        r, w = os.pipe()
        wire.send(a, {"adopt": {"owner": "x"}}, [r])
        message, fds = await wire.receive(b)
        assert message == {"adopt": {"owner": "x"}} and len(fds) == 1
        os.write(w, b"ok")
        assert os.read(fds[0], 2) == b"ok"
        for fd in (r, w, *fds):
            os.close(fd)
        a.close()
        assert await wire.receive(b) == (None, [])
        b.close()

    asyncio.run(go())


def test_a_request_raises_the_peers_error_and_its_absence() -> None:
    async def go() -> None:
        a, b = wire.pair()
        wire.send(b, {"error": "adopt: the VM was adopted already"})
        with pytest.raises(SandboxError, match="adopted already"):
            await wire.request(a, {"adopt": {}})
        b.close()
        with pytest.raises(SandboxError, match="went away"):
            await wire.request(a, {"adopt": {}})
        a.close()

    asyncio.run(go())


def test_a_cancelled_reader_lets_the_next_one_read() -> None:
    async def go() -> None:
        a, b = wire.pair()
        first = asyncio.create_task(wire.receive(b))
        await asyncio.sleep(0.01)
        await wire.cancel(first)
        wire.send(a, {"exit": 0})
        assert await asyncio.wait_for(wire.receive(b), 2) == ({"exit": 0}, [])
        a.close()
        b.close()

    asyncio.run(go())


def test_vm_cache_number_is_bounded() -> None:
    Config(factory=FactoryConfig(vm_cache_number=2)).validate()
    for bad in (-1, 129):
        with pytest.raises(ConfigError, match=rf"factory\.vm_cache_number: expected 0\.\.128, "
                           rf"got {bad}"):
            Config(factory=FactoryConfig(vm_cache_number=bad)).validate()
