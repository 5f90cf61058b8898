"""The namespace watch on real netlink: a burst of changes in a sandbox's namespace is one
look; changes elsewhere are none; after ``stop`` nothing looks. Needs root, no VM."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator

import pytest

from strongbox.sandbox.network.netmon import NetMonitor
from tests.framework.networld import World, engine_world, ip

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates namespaces and links: root")

SETTLE = 0.5


@pytest.fixture
def world() -> Iterator[World]:
    with engine_world() as made:
        yield made


def _batch(netns: str, *commands: str) -> None:
    """Several changes from one ``ip`` process: a burst, however loaded the host is."""
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(commands) + "\n",
                   text=True, check=True, capture_output=True)


async def _until(condition: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition() and asyncio.get_running_loop().time() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.05)


def test_a_burst_of_changes_is_one_look_and_stop_ends_the_watch(world: World) -> None:
    looks: list[float] = []

    async def scenario() -> None:
        async def changed() -> None:
            looks.append(asyncio.get_running_loop().time())

        monitor = NetMonitor(world.netns, changed, settle=SETTLE)
        monitor.start()
        try:
            ip("link", "add", "sbnmtest0", "type", "veth", "peer", "name", "sbnmtest1")  # host
            await asyncio.sleep(SETTLE * 3)
            assert looks == []
            # an engine's veth arriving: a link, its address, up, a route: one look
            _batch(world.name, "link add nmv0 type veth peer name nmv1",
                   "addr add 10.231.15.2/24 dev nmv0", "link set nmv0 up",
                   "route add 10.231.16.0/24 via 10.231.15.1")
            await _until(lambda: looks)
            await asyncio.sleep(SETTLE * 3)
            assert len(looks) == 1
            _batch(world.name, "link del nmv0")  # removal is a change too
            await _until(lambda: len(looks) >= 2)
            await asyncio.sleep(SETTLE * 3)
            assert len(looks) == 2
        finally:
            monitor.stop()
            ip("link", "del", "sbnmtest0")
        _batch(world.name, "link add nmv2 type veth peer name nmv3")
        await asyncio.sleep(SETTLE * 3)
        assert len(looks) == 2  # stopped: nothing looks any more

    asyncio.run(scenario())


def test_a_namespace_that_cannot_be_watched_is_a_warning_not_a_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async def changed() -> None:
            raise AssertionError("never")

        monitor = NetMonitor("/nonexistent/netns", changed)
        monitor.start()
        monitor.stop()

    asyncio.run(scenario())
    assert "not watched for changes" in caplog.text and "/nonexistent/netns" in caplog.text
