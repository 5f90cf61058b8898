"""netconfig and nicslots against a real kernel, no VM: veth ends in a namespace play the NICs.

Everything happens in two network namespaces the test creates (one holds the
"host" end of each veth pair, the other the "guest" end), so nothing outside
them changes; both are deleted in a finalizer, which also removes the veths.
nicslots' spare namespace belongs to the process that applies the request (it
goes, with any veth in it, when that process ends), so the nicslots cases keep
one such process running in the "guest" namespace for the whole test.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
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


# --- nicslots: two veths in the guest namespace play NIC slots 0 and 1 ---

_SLOTS = """
import json, sys
from strongbox.agent import nicslots
from strongbox.agent.netconfig import NetconfigError
for line in sys.stdin:
    request = json.loads(line)
    try:
        if request == "spare":
            links = nicslots.spare().nl.links()
            out = {"ok": sorted([link.name, link.mac] for link in links)}
        else:
            out = {"ok": nicslots.apply(request)}
    except NetconfigError as err:
        out = {"error": str(err)}
    print(json.dumps(out), flush=True)
"""


class Slots(Pair):
    """Two veth pairs; the guest ends (slots 0 and 1) are applied to by one long-lived process."""

    def __init__(self) -> None:
        super().__init__()
        tag = self.host_if[3:]
        self.host_ifs = [f"sbh{tag}{i}" for i in (0, 1)]
        self.guest_ifs = [f"sbg{tag}{i}" for i in (0, 1)]
        octets = ":".join(tag[i:i + 2] for i in (0, 2, 4))
        self.slot_macs = [f"02:5b:{octets}:{i:02x}" for i in (0, 1)]
        self.macs = [f"02:5c:{octets}:{i:02x}" for i in (0, 1)]  # what the interfaces ask for
        self.runner: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.runner = subprocess.Popen(["ip", "netns", "exec", self.guest_ns, sys.executable,
                                        "-c", _SLOTS], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)

    def call(self, request: Any) -> Any:
        assert self.runner is not None and self.runner.stdin and self.runner.stdout
        self.runner.stdin.write(json.dumps(request) + "\n")
        self.runner.stdin.flush()
        line = self.runner.stdout.readline()
        assert line, "the nicslots runner died"
        return json.loads(line)

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.kill()
            self.runner.wait(timeout=10)

    def interface(self, i: int, name: str) -> dict[str, Any]:
        """Slot i's veth pair as a host interface: 10.213.<8+i>.2/24, the host end .1."""
        net = f"10.213.{8 + i}"
        routes = ([{"family": 4, "destination": "", "gateway": f"{net}.1", "device": name}]
                  if i == 1 else
                  [{"family": 4, "destination": "10.216.0.0/16", "gateway": f"{net}.1"}])
        return {"name": name, "mac": self.macs[i], "mtu": 1400 + i,
                "addresses": [{"family": 4, "address": f"{net}.2", "prefix": 24}],
                "routes": routes}

    def request(self, *interfaces: dict[str, Any] | None) -> dict[str, Any]:
        return {"nics": [{"slot_mac": mac, "interface": iface}
                         for mac, iface in zip(self.slot_macs, interfaces, strict=True)]}

    def guest_links(self) -> dict[str, Any]:
        return {link["ifname"]: link for link in self.guest_json("addr", "show")}


@pytest.fixture
def slots() -> Iterator[Slots]:
    s = Slots()
    try:
        _ip("netns", "add", s.host_ns)
        _ip("netns", "add", s.guest_ns)
        for i, (host_if, guest_if) in enumerate(zip(s.host_ifs, s.guest_ifs, strict=True)):
            _ip("link", "add", host_if, "netns", s.host_ns, "type", "veth",
                "peer", "name", guest_if, "netns", s.guest_ns)
            _ip("-n", s.host_ns, "addr", "add", f"10.213.{8 + i}.1/24", "dev", host_if)
            _ip("-n", s.host_ns, "link", "set", host_if, "up")
            _ip("-n", s.guest_ns, "link", "set", guest_if, "address", s.slot_macs[i])
            _ip("-n", s.guest_ns, "link", "set", guest_if, "up")
        s.start()
        yield s
    finally:
        s.stop()
        for ns in (s.host_ns, s.guest_ns):
            _ip("netns", "del", ns, check=False)
        for host_if in s.host_ifs:
            _ip("link", "del", host_if, check=False)  # only if it never left the root namespace


def _spare(s: Slots, i: int) -> str:
    """Slot ``i``'s NIC's name in the spare namespace: ``sb`` and its slot MAC's last five
    bytes."""
    return "sb" + s.slot_macs[i].replace(":", "")[2:]


def _check_bound(s: Slots, i: int, name: str) -> None:
    """The guest's ``name`` is slot i's veth with interface i's MAC, MTU, address and routes."""
    deadline = time.monotonic() + 5
    while (link := s.guest_links()[name])["operstate"] != "UP" and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel's linkwatch reports carrier asynchronously
    assert (link["address"], link["mtu"], link["operstate"]) == (s.macs[i], 1400 + i, "UP")
    assert "UP" in link["flags"]
    (host_end,) = json.loads(_ip("-n", s.host_ns, "-j", "link", "show", s.host_ifs[i]).stdout)
    assert link["link_index"] == host_end["ifindex"]  # its veth peer is slot i's host end
    assert {(a["local"], a["prefixlen"]) for a in link["addr_info"]
            if a["family"] == "inet"} == {(f"10.213.{8 + i}.2", 24)}
    routes = {r for r in _routes(s) if r[2] == name}
    net = f"10.213.{8 + i}"
    assert routes == ({("default", f"{net}.1", name), (f"{net}.0/24", "", name)} if i == 1 else
                      {("10.216.0.0/16", f"{net}.1", name), (f"{net}.0/24", "", name)})


def test_nicslots_bind_one_hide_the_other_idempotent_then_bind_both(slots: Slots) -> None:
    s = slots
    one = s.request(None, s.interface(1, "eth0"))
    first = s.call(one)
    assert "error" not in first, first
    (eth0,) = first["ok"]["interfaces"]
    assert {k: eth0[k] for k in ("name", "mac", "mtu")} == {
        "name": "eth0", "mac": s.macs[1], "mtu": 1401}
    assert set(s.guest_links()) == {"lo", "eth0"}  # slot 0 is invisible to containers
    assert eth0["index"] == s.guest_links()["eth0"]["ifindex"]
    _check_bound(s, 1, "eth0")
    assert s.call("spare") == {"ok": [["lo", "00:00:00:00:00:00"], [_spare(s, 0), s.slot_macs[0]]]}

    again = s.call(one)  # the same request again: the same answer, nothing changes
    assert again == first
    assert set(s.guest_links()) == {"lo", "eth0"}
    _check_bound(s, 1, "eth0")
    assert _echo(s, "10.213.9.1") == "pong"  # the renamed, re-addressed slot works

    both = s.call(s.request(s.interface(0, "eth1"), s.interface(1, "eth0")))
    assert [i["name"] for i in both["ok"]["interfaces"]] == ["eth1", "eth0"], both
    assert set(s.guest_links()) == {"lo", "eth0", "eth1"}
    _check_bound(s, 0, "eth1")
    _check_bound(s, 1, "eth0")
    assert s.call("spare") == {"ok": [["lo", "00:00:00:00:00:00"]]}

    # swapped names: each NIC goes through the spare namespace, so no name clashes
    swapped = s.call(s.request(s.interface(0, "eth0"), s.interface(1, "eth1")))
    assert "error" not in swapped, swapped
    _check_bound(s, 0, "eth0")
    _check_bound(s, 1, "eth1")

    none = s.call(s.request(None, None))
    assert none == {"ok": {"interfaces": []}}
    assert set(s.guest_links()) == {"lo"}  # what `podman run --network=none` must see
    assert s.call("spare") == {"ok": [["lo", "00:00:00:00:00:00"], [_spare(s, 0), s.slot_macs[0]],
                                      [_spare(s, 1), s.slot_macs[1]]]}  # slot MACs restored


def test_nicslots_unknown_slot_and_invalid_request(slots: Slots) -> None:
    s = slots
    before = set(s.guest_links())
    ghost = "02:00:00:00:00:99"
    missing = s.call({"nics": [{"slot_mac": s.slot_macs[0], "interface": None},
                               {"slot_mac": ghost, "interface": None}]})
    assert missing == {"error": f"slot 1 ({ghost}): no interface has slot MAC {ghost}"}
    bound = s.call({"nics": [{"slot_mac": ghost, "interface": s.interface(0, "eth0")}]})
    assert bound == {"error": f"eth0: no interface has slot MAC {ghost} "
                              f"nor MAC address {s.macs[0]}"}
    invalid = s.call(s.request(None, {**s.interface(1, "eth0"), "mtu": 10}))
    assert invalid == {"error": "nics[1].interface.mtu: 10 is outside 68..65535"}
    assert set(s.guest_links()) == before == {"lo", *s.guest_ifs}  # nothing moved
