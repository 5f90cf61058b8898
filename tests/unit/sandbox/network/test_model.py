"""The pure parts of tcfilter networking: tap names, the agent's dict, netlink message filtering."""

from __future__ import annotations

import json
from typing import Any

import pytest

from strongbox.sandbox.network import interfaces, taps
from strongbox.sandbox.network.interfaces import Address, Interface, Route


class Msg:
    """Just enough of a pyroute2 netlink message: fields by key, attributes by get_attr."""

    def __init__(self, attrs: dict[str, Any], **fields: Any) -> None:
        self.attrs = attrs
        self.fields = fields

    def get_attr(self, name: str) -> Any:
        return self.attrs.get(name)

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


def test_tap_names_are_deterministic_per_sandbox_and_fit_ifnamsiz() -> None:
    slots = range(taps.MAX_SLOTS)  # boot slots and hot-plugged NICs
    names = {taps.tap_name(sandbox, slot) for sandbox in ("a", "b") for slot in slots}
    assert len(names) == 2 * taps.MAX_SLOTS and taps.tap_name("a", 3) == taps.tap_name("a", 3)
    assert all(len(name) < taps.IFNAMSIZ and name.startswith("sbt") for name in names)
    assert interfaces.is_strongbox_tap(taps.tap_name("x" * 64, 9))
    assert not interfaces.is_strongbox_tap("eth0")
    for bad in (-1, taps.MAX_SLOTS):
        with pytest.raises(ValueError):
            taps.tap_name("a", bad)


def test_to_agent_is_plain_json_and_round_trips() -> None:
    nic = Interface("eth0", 3, "02:42:ac:11:00:02", 1500,
                    (Address("172.17.0.2", 16, 4), Address("fd00::2", 64, 6)),
                    (Route("0.0.0.0/0", "172.17.0.1", "eth0", 4),
                     Route("fd01::/64", None, "eth0", 6)))
    data = nic.to_agent()
    assert json.loads(json.dumps(data)) == data
    assert data["addresses"][0] == {"address": "172.17.0.2", "prefix_len": 16, "family": 4}
    assert data["routes"][1] == {"destination": "fd01::/64", "gateway": None, "device": "eth0",
                                 "family": 6}
    assert nic.routes[0].is_default and not nic.routes[1].is_default
    with pytest.raises(AttributeError):
        nic.mtu = 9000  # type: ignore[misc]


def _addr(family: int, address: str, prefix: int, local: str | None = None) -> Msg:
    return Msg({"IFA_ADDRESS": address, "IFA_LOCAL": local}, family=family, prefixlen=prefix)


def test_addresses_skip_link_local_ipv6_and_prefer_the_local_ipv4() -> None:
    assert interfaces._address(_addr(10, "fe80::1", 64)) is None
    assert interfaces._address(_addr(10, "2001:db8::5", 64)) == Address("2001:db8::5", 64, 6)
    assert interfaces._address(_addr(2, "10.0.0.9", 32, local="10.0.0.1")) == Address(
        "10.0.0.1", 32, 4)
    assert interfaces._address(_addr(17, "x", 0)) is None  # not an IP family


def _route(family: int, dst: str | None, dst_len: int, *, gw: str | None = None, oif: int = 3,
           table: int = 254, proto: int = 4) -> Msg:
    return Msg({"RTA_DST": dst, "RTA_GATEWAY": gw, "RTA_OIF": oif, "RTA_TABLE": table},
               family=family, dst_len=dst_len, table=table, proto=proto)


def test_routes_keep_main_table_non_kernel_routes_with_one_device() -> None:
    names = {3: "eth0"}
    assert interfaces._route(_route(2, None, 0, gw="10.0.0.1"), names) == Route(
        "0.0.0.0/0", "10.0.0.1", "eth0", 4)
    assert interfaces._route(_route(10, None, 0, gw="fd00::1"), names) == Route(
        "::/0", "fd00::1", "eth0", 6)
    assert interfaces._route(_route(2, "192.168.5.0", 24), names) == Route(
        "192.168.5.0/24", None, "eth0", 4)
    assert interfaces._route(_route(2, "10.0.0.0", 24, proto=2), names) is None  # kernel's
    assert interfaces._route(_route(2, "10.0.0.1", 32, table=255), names) is None  # local
    assert interfaces._route(_route(10, "fe80::", 64), names) is None
    assert interfaces._route(_route(2, None, 0, oif=9), names) is None  # lo or a tap
