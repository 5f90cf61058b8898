"""Kata's tcfilter plumbing on real netlink: discovery, taps, splices, frames both ways, teardown.

Each test builds its own world, the shape an engine leaves: a fresh named
network namespace holding one end of a veth pair (an IPv4 /24, an IPv6 /64
and default routes via the host end), the other end in the host with the
gateway addresses. Frames are sent only on those veths, with a custom
ethertype (0x88b5, IEEE's "local experimental") so nothing else in the
namespaces reacts to them. Needs root, no VM, no guest assets.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from strongbox.errors import SandboxError
from strongbox.sandbox.network import taps, tcfilter
from strongbox.sandbox.network.interfaces import Address, Route, list_interfaces
from tests.framework.networld import World, engine_world

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates namespaces and veths: root")

ETHERTYPE = 0x88B5
TUNGETIFF = 0x800454D2
VNET_HDR_LEN = 10  # struct virtio_net_hdr, the tun default


@pytest.fixture
def world() -> Iterator[World]:
    with engine_world() as made:
        yield made


def _frame(src: bytes, payload: bytes) -> bytes:
    return b"\xff" * 6 + src + ETHERTYPE.to_bytes(2, "big") + payload


def _read_tap_until(fd: int, payload: bytes, skip: int, timeout: float = 3.0) -> bytes:
    """The first frame from the tap carrying ``payload`` (IPv6 chatter is skipped), bounded."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            frame = os.read(fd, 65536)[skip:]
            if frame[12:14] == ETHERTYPE.to_bytes(2, "big") and payload in frame:
                return frame
    raise AssertionError(f"no frame with {payload!r} came out of the tap in {timeout}s")


def _packet_socket(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE))
    sock.bind((ifname, ETHERTYPE))
    sock.settimeout(3.0)
    return sock


def _links(world: World) -> set[str]:
    return {str(link["ifname"]) for link in world.ns_json("link", "show")}


def _qdisc_kinds(world: World) -> set[tuple[str, str]]:
    return {(str(q["dev"]), str(q["kind"])) for q in world.tc_json("qdisc", "show")}


def test_discovery_returns_the_engine_interface_as_configured(world: World) -> None:
    mac = str(world.ns_json("link", "show", world.veth)[0]["address"])
    [found] = list_interfaces(world.netns)
    assert (found.name, found.mac, found.mtu) == (world.veth, mac, 1400)
    assert set(found.addresses) == {Address("10.231.7.2", 24, 4), Address("fd00:5b:7::2", 64, 6)}
    assert set(found.routes) == {Route("0.0.0.0/0", "10.231.7.1", world.veth, 4),
                                 Route("::/0", "fd00:5b:7::1", world.veth, 6)}
    assert json.loads(json.dumps(found.to_agent())) == found.to_agent()


def test_a_missing_namespace_is_one_clear_error() -> None:
    with pytest.raises(SandboxError, match="/run/netns/sbt-nonexistent does not exist"):
        list_interfaces("/run/netns/sbt-nonexistent")
    with pytest.raises(SandboxError, match="/run/netns/sbt-nonexistent does not exist"):
        taps.open_taps("/run/netns/sbt-nonexistent", ["sbtx0"])
    assert not os.path.exists("/run/netns/sbt-nonexistent")  # pyroute2 did not create it
    tcfilter.teardown("/run/netns/sbt-nonexistent", [("eth0", "sbtx0")], ["sbtx0"])  # no-op


def _spliced(world: World, vnet_hdr: bool = False) -> tuple[str, int]:
    name = taps.tap_name(world.name, 0)
    [fd] = taps.open_taps(world.netns, [name], vnet_hdr=vnet_hdr)
    try:
        splice = tcfilter.splice(world.netns, world.veth, name)
    except BaseException:
        os.close(fd)
        raise
    assert (splice.veth, splice.tap, splice.mtu) == (world.veth, name, 1400)
    return name, fd


@pytest.mark.parametrize("vnet_hdr", [False, True], ids=["plain", "vnet_hdr"])
def test_frames_flow_both_ways_and_teardown_leaves_nothing(world: World, vnet_hdr: bool) -> None:
    tap, fd = _spliced(world, vnet_hdr)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        [link] = world.ns_json("-d", "link", "show", tap)
        assert link["mtu"] == 1400 and "UP" in link["flags"]
        info = link["linkinfo"]["info_data"]
        assert (info["type"], info["vnet_hdr"], info["pi"]) == ("tap", vnet_hdr, False)
        assert {(world.veth, "ingress"), (tap, "ingress")} <= _qdisc_kinds(world)
        for dev, target in ((world.veth, tap), (tap, world.veth)):
            text = subprocess.run(["tc", "-n", world.name, "filter", "show", "dev", dev,
                                   "ingress"], check=True, capture_output=True, text=True).stdout
            assert f"Egress Redirect to device {target}" in text
        assert [i.name for i in list_interfaces(world.netns)] == [world.veth]  # tap skipped

        skip = VNET_HDR_LEN if vnet_hdr else 0
        with _packet_socket(world.peer) as sock:
            out = _frame(bytes.fromhex("02005b000001"), b"guest-to-host " + b"x" * 40)
            os.write(fd, b"\0" * skip + out)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                got = sock.recv(65536)
                if b"guest-to-host" in got:
                    break
            assert got == out

            back = _frame(bytes.fromhex("02005b000002"), b"host-to-guest " + b"y" * 40)
            sock.send(back)
            assert _read_tap_until(fd, b"host-to-guest", skip) == back
    finally:
        os.close(fd)
        tcfilter.teardown(world.netns, [(world.veth, tap)], [tap])
    assert not any(name.startswith("sbt") and name != world.veth for name in _links(world))
    assert not [q for q in _qdisc_kinds(world) if q[1] == "ingress"]
    tcfilter.teardown(world.netns, [(world.veth, tap)], [tap])  # idempotent


def test_a_tap_dies_with_its_last_fd_and_leaves_only_our_filter_for_teardown(
        world: World) -> None:
    """What a kill -9 of QEMU and its owner leaves: the tap is gone by itself, our filter on
    the engine's veth is not, until teardown removes it from names alone."""
    tap, fd = _spliced(world)
    os.close(fd)
    deadline = time.monotonic() + 3
    while tap in _links(world) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tap not in _links(world)
    assert (world.veth, "ingress") in _qdisc_kinds(world)
    tcfilter.teardown(world.netns, [(world.veth, tap)], [tap])
    assert (world.veth, "ingress") not in _qdisc_kinds(world)


def test_teardown_while_the_fd_is_open_removes_the_tap(world: World) -> None:
    tap, fd = _spliced(world)
    try:
        tcfilter.teardown(world.netns, [(world.veth, tap)], [tap])
        assert tap not in _links(world)
        assert (world.veth, "ingress") not in _qdisc_kinds(world)
    finally:
        os.close(fd)


def test_teardown_keeps_an_ingress_qdisc_and_filter_someone_else_made(world: World) -> None:
    subprocess.run(["tc", "-n", world.name, "qdisc", "add", "dev", world.veth, "ingress"],
                   check=True)
    subprocess.run(["tc", "-n", world.name, "filter", "add", "dev", world.veth, "ingress",
                    "prio", "100", "protocol", "0x88b6", "u32", "match", "u32", "0", "0",
                    "flowid", "1:1"], check=True)
    tap, fd = _spliced(world)
    os.close(fd)
    tcfilter.teardown(world.netns, [(world.veth, tap)], [tap])
    assert (world.veth, "ingress") in _qdisc_kinds(world)
    prios = {f.get("pref") for f in world.tc_json("filter", "show", "dev", world.veth, "ingress")}
    assert prios == {100}


def test_a_veth_another_sandbox_spliced_is_refused_untouched(world: World) -> None:
    tap, fd = _spliced(world)
    other = taps.tap_name("another sandbox", 0)
    [other_fd] = taps.open_taps(world.netns, [other])
    try:
        with pytest.raises(SandboxError, match=f"network interface {world.veth}: .*another "
                           "sandbox"):
            tcfilter.splice(world.netns, world.veth, other)
        assert {tap, other} <= _links(world)
        assert {(world.veth, "ingress"), (tap, "ingress")} <= _qdisc_kinds(world)
        assert (other, "ingress") not in _qdisc_kinds(world)
    finally:
        os.close(fd)
        os.close(other_fd)
        tcfilter.teardown(world.netns, [(world.veth, tap)], [tap, other])


def test_a_taken_tap_name_fails_open_taps_and_leaves_nothing(world: World) -> None:
    first, second = taps.tap_name(world.name, 0), taps.tap_name(world.name, 1)
    [held] = taps.open_taps(world.netns, [second])
    before = set(os.listdir("/proc/self/fd"))
    try:
        with pytest.raises(SandboxError, match=f"tap {second} in {world.netns}"):
            taps.open_taps(world.netns, [first, second])
        assert set(os.listdir("/proc/self/fd")) <= before
        deadline = time.monotonic() + 3
        while first in _links(world) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first not in _links(world)
    finally:
        os.close(held)


def test_an_unknown_interface_is_one_error_naming_it(world: World) -> None:
    with pytest.raises(SandboxError, match="network interface eth9 not found"):
        tcfilter.splice(world.netns, "eth9", "sbtnone0")


def test_a_failed_splice_leaves_nothing_behind(world: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    real = tcfilter._redirect
    calls: list[int] = []

    def second_fails(ipr: object, src: int, dst: int, egress: object = None) -> None:
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(ipr, src, dst, egress)  # type: ignore[arg-type]

    monkeypatch.setattr(tcfilter, "_redirect", second_fails)
    tap = taps.tap_name(world.name, 0)
    [fd] = taps.open_taps(world.netns, [tap])
    try:
        with pytest.raises(SandboxError, match=f"network interface {world.veth}: .*No space"):
            tcfilter.splice(world.netns, world.veth, tap)
        assert len(calls) == 2
        assert not [q for q in _qdisc_kinds(world) if q[1] == "ingress"]
    finally:
        os.close(fd)
