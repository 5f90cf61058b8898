"""netconfig against a real kernel, no VM: a veth end in a namespace plays the guest's NIC.

Everything happens in two network namespaces the test creates (one holds the
"host" end of a veth pair, the other the "guest" end), so nothing outside
them changes; both are deleted in a finalizer, which also removes the veths.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for netns and veth")

_APPLY = """
import json, sys
from strongbox.agent import netconfig
try:
    link = netconfig.configure(json.loads(sys.argv[1]))
except netconfig.NetconfigError as err:
    sys.exit(str(err))
print(json.dumps({"name": link.name, "mac": link.mac, "mtu": link.mtu, "up": link.up}))
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True,
                          timeout=10)


class Pair:
    """The namespaces and veth names of one test."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.host_ns, self.guest_ns = f"sbnch{tag}", f"sbncg{tag}"
        self.host_if, self.guest_if = f"sbh{tag}", f"sbg{tag}"
        self.mac = "02:5b:" + ":".join(tag[i:i + 2] for i in (0, 2, 4)) + ":07"

    def apply(self, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.guest_ns, sys.executable, "-c", _APPLY,
                               json.dumps(config)], capture_output=True, text=True, timeout=30)

    def guest_json(self, *args: str) -> Any:
        return json.loads(_ip("-n", self.guest_ns, "-j", *args).stdout or "[]")


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    try:
        _ip("netns", "add", p.host_ns)
        _ip("netns", "add", p.guest_ns)
        _ip("link", "add", p.host_if, "netns", p.host_ns, "type", "veth",
            "peer", "name", p.guest_if, "netns", p.guest_ns)
        _ip("-n", p.host_ns, "addr", "add", "10.213.7.1/24", "dev", p.host_if)
        _ip("-n", p.host_ns, "addr", "add", "fd00:213::1/64", "dev", p.host_if, "nodad")
        _ip("-n", p.host_ns, "link", "set", p.host_if, "up")
        _ip("-n", p.guest_ns, "link", "set", p.guest_if, "address", p.mac)
        _ip("-n", p.guest_ns, "link", "set", p.guest_if, "up")  # up: rename must take it down
        yield p
    finally:
        for ns in (p.host_ns, p.guest_ns):
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", p.host_if, check=False)  # only if it never left the root namespace


def _config(pair: Pair, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "eth0", "mac": pair.mac.upper(), "mtu": 1400,
        "addresses": [{"family": 4, "address": "10.213.7.2", "prefix": 24},
                      {"family": 6, "address": "fd00:213::2", "prefix": 64}],
        "routes": [{"family": 4, "destination": "", "gateway": "10.213.7.1", "device": "eth0"},
                   {"family": 6, "destination": "", "gateway": "fd00:213::1", "device": "eth0"},
                   {"family": 4, "destination": "10.214.0.0/16", "gateway": "10.213.7.254",
                    "device": "eth0"},
                   {"family": 4, "destination": "10.215.0.0/16", "gateway": "", "device": ""}]}
    cfg.update(over)
    return cfg


def _routes(pair: Pair, *family: str) -> set[tuple[str, str, str]]:
    return {(r["dst"], r.get("gateway", ""), r["dev"])
            for r in pair.guest_json(*family, "route", "show", "table", "main")}


def _check_state(pair: Pair) -> None:
    (link,) = pair.guest_json("addr", "show", "dev", "eth0")
    assert (link["address"], link["mtu"], link["operstate"]) == (pair.mac, 1400, "UP")
    assert "UP" in link["flags"]
    addrs = {(a["family"], a["local"], a["prefixlen"]) for a in link["addr_info"]
             if a.get("scope") == "global"}
    assert addrs == {("inet", "10.213.7.2", 24), ("inet6", "fd00:213::2", 64)}
    v6 = next(a for a in link["addr_info"] if a["local"] == "fd00:213::2")
    assert not v6.get("tentative") and not v6.get("dadfailed")  # NODAD: usable at once
    assert _routes(pair) == {("default", "10.213.7.1", "eth0"),
                             ("10.213.7.0/24", "", "eth0"),
                             ("10.214.0.0/16", "10.213.7.254", "eth0"),
                             ("10.215.0.0/16", "", "eth0")}
    v6_routes = _routes(pair, "-6")
    assert ("default", "fd00:213::1", "eth0") in v6_routes
    assert ("fd00:213::/64", "", "eth0") in v6_routes


def test_configure_rename_mtu_addresses_routes_idempotent(pair: Pair) -> None:
    first = pair.apply(_config(pair))
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"name": "eth0", "mac": pair.mac, "mtu": 1400, "up": True}
    names = {link["ifname"] for link in pair.guest_json("link", "show")}
    assert names == {"lo", "eth0"}  # renamed, not added
    _check_state(pair)

    again = pair.apply(_config(pair))  # EEXIST on every address and route is success
    assert again.returncode == 0, again.stderr
    _check_state(pair)

    for address in ("10.213.7.1", "fd00:213::1"):  # the guest reaches the host end at once
        assert _echo(pair, address) == "pong"


_ECHO_SERVER = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as s:
    s.bind((sys.argv[1], 0)); s.settimeout(5)
    print(s.getsockname()[1], flush=True)
    data, peer = s.recvfrom(64)
    s.sendto(b"pong", peer)
"""
_ECHO_CLIENT = """
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
with socket.socket(family, socket.SOCK_DGRAM) as s:
    s.settimeout(5)
    s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
    print(s.recv(64).decode())
"""


def _echo(pair: Pair, address: str) -> str:
    """One bounded UDP round trip from the guest namespace to the host end of the veth."""
    server = subprocess.Popen(["ip", "netns", "exec", pair.host_ns, sys.executable, "-c",
                               _ECHO_SERVER, address], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        client = subprocess.run(["ip", "netns", "exec", pair.guest_ns, sys.executable, "-c",
                                 _ECHO_CLIENT, address, port],
                                capture_output=True, text=True, timeout=15)
        assert client.returncode == 0, client.stderr
        return client.stdout.strip()
    finally:
        server.kill()
        server.wait(timeout=10)


def test_bad_gateway_is_one_line_naming_interface_and_route(pair: Pair) -> None:
    bad = [{"family": 4, "destination": "10.216.0.0/16", "gateway": "192.168.250.1"}]
    result = pair.apply(_config(pair, routes=bad))
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith(
        "eth0: adding route 10.216.0.0/16 via 192.168.250.1: Network is unreachable"), message
    assert "\n" not in message
    # The steps before the failing one were applied; nothing else was.
    assert _routes(pair) == {("10.213.7.0/24", "", "eth0")}


def test_onlink_gateway_outside_every_subnet(pair: Pair) -> None:
    routes = [{"family": 4, "destination": "", "gateway": "169.254.1.1", "onlink": True}]
    result = pair.apply(_config(pair, routes=routes))
    assert result.returncode == 0, result.stderr
    (route,) = (r for r in pair.guest_json("route", "show") if r["dst"] == "default")
    assert (route["gateway"], "onlink" in route["flags"]) == ("169.254.1.1", True)


def test_unknown_mac_and_invalid_config(pair: Pair) -> None:
    missing = pair.apply(_config(pair, mac="02:00:00:00:00:99"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == "eth0: no interface has MAC address 02:00:00:00:00:99"
    invalid = pair.apply(_config(pair, mtu=10))
    assert invalid.stderr.strip() == "mtu: 10 is outside 68..65535"
    assert {link["ifname"] for link in pair.guest_json("link", "show")} == {"lo", pair.guest_if}
