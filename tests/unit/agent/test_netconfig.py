"""netlink's packing/parsing and netconfig's config validation, checked without privileges."""

from __future__ import annotations

import struct
import subprocess
import sys
from typing import Any

import pytest

from strongbox.agent import netconfig as nc
from strongbox.agent import netlink as nl


def _config(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "eth0", "mac": "AA:bb:cc:dd:ee:01", "mtu": 1400,
        "addresses": [{"family": 4, "address": "10.0.0.2", "prefix": 24},
                      {"family": 6, "address": "fd00::2", "prefix": 64}],
        "routes": [{"family": 4, "destination": "", "gateway": "10.0.0.1", "device": "eth0"},
                   {"family": 4, "destination": "10.1.0.0/16", "gateway": "", "device": ""}]}
    cfg.update(over)
    return cfg


def test_attr_is_padded_and_parses_back() -> None:
    data = nl.attr(3, b"eth0\0") + nl.attr(4, struct.pack("=I", 1500))
    assert len(data) == 12 + 8  # 4 + 5 bytes padded to 12, then 4 + 4
    assert nl.parse_attrs(data) == {3: b"eth0\0", 4: struct.pack("=I", 1500)}


def test_parse_attrs_stops_at_a_bad_length() -> None:
    good = nl.attr(1, b"abcd")
    assert nl.parse_attrs(good + struct.pack("=HH", 2, 9)) == {1: b"abcd"}  # len < header
    assert nl.parse_attrs(good + struct.pack("=HH", 200, 9) + b"xx") == {1: b"abcd"}
    assert nl.parse_attrs(b"\x01") == {}


def test_message_header_and_split() -> None:
    one = nl.message(nl.RTM_GETLINK, nl.NLM_F_REQUEST, 7, b"\0" * 16)
    assert struct.unpack_from("=IHHII", one) == (32, nl.RTM_GETLINK, 1, 7, 0)
    two = nl.message(nl.NLMSG_DONE, 2, 8, b"\0\0\0\0")
    assert nl.split_messages(one + two + b"\x05") == [
        (nl.RTM_GETLINK, 1, 7, b"\0" * 16), (nl.NLMSG_DONE, 2, 8, b"\0\0\0\0")]


def test_parse_link() -> None:
    payload = (nl.IFINFOMSG.pack(0, 1, 5, nl.IFF_UP, 0)
               + nl.attr(nl.IFLA_IFNAME, b"veth9\0")
               + nl.attr(nl.IFLA_ADDRESS, bytes.fromhex("aabbccddee01"))
               + nl.attr(nl.IFLA_MTU, struct.pack("=I", 9000)))
    link = nl.parse_link(payload)
    assert (link.index, link.name, link.mac, link.mtu, link.up) == (
        5, "veth9", "aa:bb:cc:dd:ee:01", 9000, True)
    assert nl.find_by_mac([link], "AA:BB:CC:DD:EE:01") is link
    assert nl.find_by_mac([link], "aa:bb:cc:dd:ee:02") is None
    assert link.perm_mac == ""  # a veth or dummy reports no permanent address


def test_parse_link_permanent_address() -> None:
    """A virtio-net NIC reports its slot MAC as IFLA_PERM_ADDRESS, whatever its MAC is now."""
    payload = (nl.IFINFOMSG.pack(0, 1, 2, 0, 0)
               + nl.attr(nl.IFLA_IFNAME, b"eth0\0")
               + nl.attr(nl.IFLA_ADDRESS, bytes.fromhex("aabbccddee01"))
               + nl.attr(nl.IFLA_PERM_ADDRESS, bytes.fromhex("025b00000001")))
    link = nl.parse_link(payload)
    assert (link.mac, link.perm_mac, link.up) == ("aa:bb:cc:dd:ee:01", "02:5b:00:00:00:01", False)
    assert "perm_mac='02:5b:00:00:00:01'" in repr(link)


def test_parse_error_ack_errno_and_extack() -> None:
    echoed = nl.NLMSGHDR.pack(36, nl.RTM_NEWROUTE, 5, 1, 0)
    assert nl.parse_error(0, struct.pack("=i", 0) + echoed) == (0, "")
    extack = nl.attr(nl.NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0")
    assert nl.parse_error(nl.NLM_F_ACK_TLVS, struct.pack("=i", -101) + echoed + extack) == (
        101, "Nexthop has invalid gateway")


def test_link_request_bodies() -> None:
    body = nl.link_request(3, name="ctr0", mtu=1280)
    assert nl.IFINFOMSG.unpack_from(body) == (0, 0, 3, 0, 0)  # change 0: flags untouched
    attrs = nl.parse_attrs(body[nl.IFINFOMSG.size:])
    assert attrs == {nl.IFLA_IFNAME: b"ctr0\0", nl.IFLA_MTU: struct.pack("=I", 1280)}
    assert nl.IFINFOMSG.unpack_from(nl.link_request(3, up=True))[3:] == (nl.IFF_UP, nl.IFF_UP)
    assert nl.IFINFOMSG.unpack_from(nl.link_request(3, up=False))[3:] == (0, nl.IFF_UP)


def test_link_request_sets_mac_and_moves_to_a_namespace() -> None:
    body = nl.link_request(3, mac="AA:bb:cc:dd:ee:0f")
    assert nl.IFINFOMSG.unpack_from(body) == (0, 0, 3, 0, 0)
    assert nl.parse_attrs(body[nl.IFINFOMSG.size:]) == {
        nl.IFLA_ADDRESS: bytes.fromhex("aabbccddee0f")}
    move = nl.link_request(3, name="sbslot1", netns_fd=7)
    assert nl.parse_attrs(move[nl.IFINFOMSG.size:]) == {
        nl.IFLA_IFNAME: b"sbslot1\0", nl.IFLA_NET_NS_FD: struct.pack("=I", 7)}
    assert nl.parse_attrs(nl.link_request(3, netns_fd=0)[nl.IFINFOMSG.size:]) == {
        nl.IFLA_NET_NS_FD: struct.pack("=I", 0)}  # fd 0 is a namespace fd like any other
    assert nl.link_request(3) == nl.IFINFOMSG.pack(0, 0, 3, 0, 0)  # no attribute by default


def test_addr_request_sets_nodad_for_ipv6_only() -> None:
    v6 = nl.addr_request(4, nl.AF_INET6, bytes(16), 64)
    assert nl.IFADDRMSG.unpack_from(v6) == (nl.AF_INET6, 64, nl.IFA_F_NODAD, 0, 4)
    v4 = nl.addr_request(4, nl.AF_INET, b"\x0a\0\0\x02", 24)
    assert nl.IFADDRMSG.unpack_from(v4) == (nl.AF_INET, 24, 0, 0, 4)
    assert nl.parse_attrs(v4[nl.IFADDRMSG.size:]) == {nl.IFA_LOCAL: b"\x0a\0\0\x02",
                                                      nl.IFA_ADDRESS: b"\x0a\0\0\x02"}


def test_route_request_default_and_device_routes() -> None:
    default = nl.route_request(2, nl.AF_INET, b"", 0, b"\x0a\0\0\x01", metric=100, onlink=True)
    fields = nl.RTMSG.unpack_from(default)
    assert fields == (nl.AF_INET, 0, 0, 0, nl.RT_TABLE_MAIN, nl.RTPROT_STATIC,
                      nl.RT_SCOPE_UNIVERSE, nl.RTN_UNICAST, nl.RTNH_F_ONLINK)
    assert nl.parse_attrs(default[nl.RTMSG.size:]) == {
        nl.RTA_GATEWAY: b"\x0a\0\0\x01", nl.RTA_OIF: struct.pack("=i", 2),
        nl.RTA_PRIORITY: struct.pack("=I", 100)}
    device = nl.route_request(2, nl.AF_INET, b"\x0a\x01\0\0", 16, b"")
    assert nl.RTMSG.unpack_from(device)[1] == 16
    assert nl.RTMSG.unpack_from(device)[6] == nl.RT_SCOPE_LINK
    assert nl.parse_attrs(device[nl.RTMSG.size:]) == {nl.RTA_DST: b"\x0a\x01\0\0",
                                                      nl.RTA_OIF: struct.pack("=i", 2)}
    v6 = nl.route_request(2, nl.AF_INET6, bytes(16), 0, b"")
    assert nl.RTMSG.unpack_from(v6)[6] == nl.RT_SCOPE_UNIVERSE  # IPv6 has no link scope


def test_validate_normalises_and_orders_device_routes_first() -> None:
    cfg = nc.validate(_config())
    assert cfg["mac"] == "aa:bb:cc:dd:ee:01" and cfg["mtu"] == 1400
    assert [a["packed"] for a in cfg["addresses"]] == [
        bytes([10, 0, 0, 2]), bytes.fromhex("fd00" + "00" * 13 + "02")]
    assert [nc.describe_route(r) for r in cfg["routes"]] == ["10.1.0.0/16",
                                                             "default via 10.0.0.1"]
    assert cfg["routes"][0]["dst_len"] == 16 and cfg["routes"][1]["dst_len"] == 0


def test_validate_accepts_the_host_discovery_shape() -> None:
    cfg = nc.validate({"name": "eth0", "index": 7, "mac": "aa:bb:cc:dd:ee:01", "mtu": 1500,
                       "addresses": [{"family": 4, "address": "10.88.0.5", "prefix_len": 16}],
                       "routes": [{"family": 4, "destination": "0.0.0.0/0",
                                   "gateway": "10.88.0.1", "device": "eth0"},
                                  {"family": 6, "destination": "fd00:1::/64",
                                   "gateway": None, "device": "eth0"}]})
    assert cfg["addresses"][0]["prefix"] == 16
    assert [(r["dst_len"], r["gw"]) for r in cfg["routes"]] == [
        (64, b""), (0, bytes([10, 88, 0, 1]))]


@pytest.mark.parametrize(("over", "message"), [
    ({"name": ""}, "name: not a valid interface name"),
    ({"name": "a" * 16}, "name: not a valid interface name"),
    ({"name": "a/b"}, "name: not a valid interface name"),
    ({"name": 3}, "name: expected str, got 3"),
    ({"mac": "aa:bb:cc:dd:ee"}, "mac: expected six hex octets"),
    ({"mac": "aa:bb:cc:dd:ee:gg"}, "mac: expected six hex octets"),
    ({"mtu": 67}, "mtu: 67 is outside 68..65535"),
    ({"mtu": True}, "mtu: expected int, got True"),
    ({"extra": 1}, "extra: unknown field"),
    ({"addresses": {}}, "addresses: expected list"),
    ({"addresses": ["x"]}, "addresses[0].: expected an object"),
    ({"addresses": [{"family": 5, "address": "1.2.3.4", "prefix": 8}]},
     "addresses[0].family: expected 4 or 6, got 5"),
    ({"addresses": [{"family": 4, "address": "1.2.3.4", "prefix": 33}]},
     "addresses[0].prefix: 33 is outside 0..32"),
    ({"addresses": [{"family": 4, "address": "1.2.3", "prefix": 8}]},
     "addresses[0].address: not an IPv4 address: '1.2.3'"),
    ({"addresses": [{"family": 4, "address": "fd00::1", "prefix": 8}]},
     "addresses[0].address: not an IPv4 address"),
    ({"addresses": [{"family": 6, "address": "fd00::1", "prefix": 129}]},
     "addresses[0].prefix: 129 is outside 0..128"),
    ({"addresses": [{"family": 4, "address": "1.2.3.4", "prefix": 8, "x": 1}]},
     "addresses[0].x: unknown field"),
    ({"addresses": [{"family": 4, "address": "1.2.3.4", "prefix": 8, "prefix_len": 8}]},
     "addresses[0].prefix_len: give prefix or prefix_len, not both"),
    ({"routes": [{"family": 4, "destination": "10.1.0.0", "gateway": ""}]},
     "routes[0].destination: expected ADDRESS/PREFIX"),
    ({"routes": [{"family": 4, "destination": "10.1.0.0/٣", "gateway": ""}]},
     "routes[0].destination: expected ADDRESS/PREFIX"),
    ({"routes": [{"family": 4, "destination": "10.1.0.1/16", "gateway": ""}]},
     "routes[0].destination: host bits set in '10.1.0.1/16'"),
    ({"routes": [{"family": 6, "destination": "fd00::/64", "gateway": "10.0.0.1"}]},
     "routes[0].gateway: not an IPv6 address: '10.0.0.1'"),
    ({"routes": [{"family": 4, "destination": "", "gateway": ""}]},
     "routes[0].: a default route needs a gateway"),
    ({"routes": [{"family": 4, "destination": "10.1.0.0/16", "onlink": True}]},
     "routes[0].onlink: only a route via a gateway"),
    ({"routes": [{"family": 4, "gateway": "10.0.0.1", "device": "eth1"}]},
     "routes[0].device: 'eth1' is not this interface ('eth0')"),
    ({"routes": [{"family": 4, "gateway": "10.0.0.1", "metric": -1}]},
     "routes[0].metric: -1 is outside"),
])
def test_validate_rejects_with_one_line_naming_the_field(over: dict[str, Any],
                                                         message: str) -> None:
    with pytest.raises(nc.InvalidNetconfig) as info:
        nc.validate(_config(**over))
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_validate_rejects_a_non_object() -> None:
    with pytest.raises(nc.InvalidNetconfig, match=r"^config: expected an object"):
        nc.validate(["eth0"])


@pytest.mark.parametrize("module", ["netlink", "netconfig", "nicslots"])
def test_import_stays_cheap(module: str) -> None:
    """Neither socket (enum) nor ipaddress (functools, collections) nor typing nor ctypes."""
    code = (f"import sys; import strongbox.agent.{module}; "
            "print(sorted({'socket', 'enum', 'ipaddress', 'typing', 'collections', 'ctypes', "
            "'threading'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-S", "-c", code], check=True, capture_output=True,
                         text=True, env={"PYTHONPATH": nc.__file__.rsplit("/strongbox/", 1)[0]})
    assert out.stdout.strip() == "[]"
