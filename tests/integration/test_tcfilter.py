"""Kata's tcfilter plumbing on real netlink: discovery, tap + redirects, frames both ways, teardown.

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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from strongbox.errors import SandboxError
from strongbox.sandbox.network import tcfilter
from strongbox.sandbox.network.interfaces import Address, Route, list_interfaces

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates namespaces and veths: root")

ETHERTYPE = 0x88B5
TUNGETIFF = 0x800454D2
VNET_HDR_LEN = 10  # struct virtio_net_hdr, the tun default


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


@dataclass
class World:
    netns: str  # the path, as strongbox is given it
    name: str
    veth: str  # in the namespace
    peer: str  # in the host

    def ns_json(self, *args: str) -> list[dict[str, Any]]:
        out = subprocess.run(["ip", "-j", "-n", self.name, *args], check=True,
                             capture_output=True, text=True).stdout
        return list(json.loads(out or "[]"))

    def tc_json(self, *args: str) -> list[dict[str, Any]]:
        out = subprocess.run(["tc", "-j", "-n", self.name, *args], check=True,
                             capture_output=True, text=True).stdout
        return list(json.loads(out or "[]"))


@pytest.fixture
def world() -> Iterator[World]:
    tag = uuid.uuid4().hex[:8]
    name, veth, peer = f"sbt-{tag}", f"sbc{tag}", f"sbh{tag}"
    try:
        _ip("netns", "add", name)
        _ip("link", "add", peer, "type", "veth", "peer", "name", veth)
        _ip("link", "set", veth, "netns", name)
        _ip("-n", name, "link", "set", veth, "mtu", "1400", "up")
        _ip("-n", name, "addr", "add", "10.231.7.2/24", "dev", veth)
        _ip("-n", name, "addr", "add", "fd00:5b:7::2/64", "dev", veth, "nodad")
        _ip("-n", name, "route", "add", "default", "via", "10.231.7.1")
        _ip("-n", name, "-6", "route", "add", "default", "via", "fd00:5b:7::1")
        _ip("link", "set", peer, "mtu", "1400", "up")
        _ip("addr", "add", "10.231.7.1/24", "dev", peer)
        yield World(f"/run/netns/{name}", name, veth, peer)
    finally:
        subprocess.run(["ip", "link", "del", peer], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


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
    assert not os.path.exists("/run/netns/sbt-nonexistent")  # pyroute2 did not create it
    tcfilter.teardown("/run/netns/sbt-nonexistent", "eth0")  # nothing to do, no error


@pytest.mark.parametrize("vnet_hdr", [False, True], ids=["plain", "vnet_hdr"])
def test_frames_flow_both_ways_and_teardown_leaves_nothing(world: World, vnet_hdr: bool) -> None:
    tap = tcfilter.setup(world.netns, world.veth, vnet_hdr=vnet_hdr, owner=4242)
    try:
        assert tap.name == f"sbtap{tap.veth_index}" and tap.mtu == 1400
        assert fcntl.fcntl(tap.fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        [link] = world.ns_json("-d", "link", "show", tap.name)
        assert link["mtu"] == 1400 and "UP" in link["flags"]
        info = link["linkinfo"]["info_data"]
        assert (str(info["user"]), info["vnet_hdr"], info["pi"]) == ("4242", vnet_hdr, False)
        assert {(world.veth, "ingress"), (tap.name, "ingress")} <= _qdisc_kinds(world)
        for dev, target in ((world.veth, tap.name), (tap.name, world.veth)):
            text = subprocess.run(["tc", "-n", world.name, "filter", "show", "dev", dev,
                                   "ingress"], check=True, capture_output=True, text=True).stdout
            assert f"Egress Redirect to device {target}" in text
        assert [i.name for i in list_interfaces(world.netns)] == [world.veth]  # tap skipped

        skip = VNET_HDR_LEN if vnet_hdr else 0
        with _packet_socket(world.peer) as sock:
            out = _frame(bytes.fromhex("02005b000001"), b"guest-to-host " + b"x" * 40)
            os.write(tap.fd, b"\0" * skip + out)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                got = sock.recv(65536)
                if b"guest-to-host" in got:
                    break
            assert got == out

            back = _frame(bytes.fromhex("02005b000002"), b"host-to-guest " + b"y" * 40)
            sock.send(back)
            assert _read_tap_until(tap.fd, b"host-to-guest", skip) == back
    finally:
        os.close(tap.fd)
        tcfilter.teardown(world.netns, world.veth)
    assert not any(name.startswith("sbtap") for name in _links(world))
    assert not [q for q in _qdisc_kinds(world) if q[1] == "ingress"]
    tcfilter.teardown(world.netns, world.veth)  # idempotent


def test_teardown_while_the_fd_is_open_removes_the_tap(world: World) -> None:
    tap = tcfilter.setup(world.netns, world.veth)
    try:
        tcfilter.teardown(world.netns, world.veth)
        assert tap.name not in _links(world)
        assert (world.veth, "ingress") not in _qdisc_kinds(world)
    finally:
        os.close(tap.fd)


def test_teardown_keeps_an_ingress_qdisc_and_filter_someone_else_made(world: World) -> None:
    subprocess.run(["tc", "-n", world.name, "qdisc", "add", "dev", world.veth, "ingress"],
                   check=True)
    subprocess.run(["tc", "-n", world.name, "filter", "add", "dev", world.veth, "ingress",
                    "prio", "100", "protocol", "0x88b6", "u32", "match", "u32", "0", "0",
                    "flowid", "1:1"], check=True)
    tap = tcfilter.setup(world.netns, world.veth)
    os.close(tap.fd)
    tcfilter.teardown(world.netns, world.veth)
    assert (world.veth, "ingress") in _qdisc_kinds(world)
    prios = {f.get("pref") for f in world.tc_json("filter", "show", "dev", world.veth, "ingress")}
    assert prios == {100}


def test_a_second_setup_fails_without_touching_the_live_tap(world: World) -> None:
    tap = tcfilter.setup(world.netns, world.veth)
    try:
        with pytest.raises(SandboxError, match=f"network interface {world.veth}: .*busy"):
            tcfilter.setup(world.netns, world.veth)
        assert tap.name in _links(world)
        assert {(world.veth, "ingress"), (tap.name, "ingress")} <= _qdisc_kinds(world)
    finally:
        os.close(tap.fd)
        tcfilter.teardown(world.netns, world.veth)


def test_an_unknown_interface_is_one_error_naming_it(world: World) -> None:
    with pytest.raises(SandboxError, match="network interface eth9 not found"):
        tcfilter.setup(world.netns, "eth9")


def test_a_failed_setup_leaves_nothing_behind(world: World,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    real = tcfilter._redirect
    calls: list[int] = []

    def second_fails(ipr: object, src: int, dst: int) -> None:
        calls.append(src)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(ipr, src, dst)

    monkeypatch.setattr(tcfilter, "_redirect", second_fails)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(SandboxError, match=f"network interface {world.veth}: .*No space"):
        tcfilter.setup(world.netns, world.veth)
    assert len(calls) == 2
    assert not any(name.startswith("sbtap") for name in _links(world))
    assert not [q for q in _qdisc_kinds(world) if q[1] == "ingress"]
    assert set(os.listdir("/proc/self/fd")) <= before
