"""nicslots without privileges: request validation, finding each slot's NIC, the move plan,
and the agent verb's error mapping. The kernel side is tests/integration/test_netconfig.py."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from strongbox.agent import nicslots as ns
from strongbox.agent.netconfig import InvalidNetconfig, NetconfigError
from strongbox.agent.netlink import Link
from strongbox.protocol import E_NETWORK, verbs

S0, S1, S2 = "02:5b:00:00:00:00", "02:5b:00:00:00:01", "02:5b:00:00:00:02"


def _iface(name: str = "eth0", mac: str = "aa:bb:cc:dd:ee:01", **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"name": name, "mac": mac, "mtu": 1500,
                           "addresses": [{"family": 4, "address": "10.0.0.2", "prefix": 24}],
                           "routes": [{"family": 4, "destination": "", "gateway": "10.0.0.1"}]}
    cfg.update(over)
    return cfg


def _request(*nics: tuple[str, dict[str, Any] | None]) -> dict[str, Any]:
    return {"nics": [{"slot_mac": mac, "interface": iface} for mac, iface in nics]}


def test_validate_request_normalises_each_slot() -> None:
    bound = {"slot_mac": S1, "interface": _iface(mac="AA:BB:CC:DD:EE:01")}
    slots = ns.validate_request({"nics": [{"slot_mac": S0.upper()}, bound]})
    assert [(s.index, s.mac, s.label, s.spare_name) for s in slots] == [
        (0, S0, f"slot 0 ({S0})", "sb5b00000000"), (1, S1, "eth0", "sb5b00000001")]
    assert slots[0].cfg is None
    assert slots[1].cfg is not None and slots[1].cfg["mac"] == "aa:bb:cc:dd:ee:01"
    assert ns.validate_request({"nics": []}) == []


@pytest.mark.parametrize(("request_", "message"), [
    ({}, "nics: expected a list, got None"),
    ([], "nics: expected a list, got None"),
    ({"nics": {}}, "nics: expected a list, got {}"),
    ({"nics": ["x"]}, "nics[0]: expected an object, got 'x'"),
    ({"nics": [{"slot_mac": S0, "extra": 1}]}, "nics[0].extra: unknown field"),
    ({"nics": [{"interface": None}]}, "nics[0].slot_mac: expected str, got None"),
    ({"nics": [{"slot_mac": S0}, {"slot_mac": "02:5b:00:00:01"}]},
     "nics[1].slot_mac: expected six hex octets"),
    ({"nics": [{"slot_mac": S0}, {"slot_mac": S0.upper()}]},
     f"nics[1].slot_mac: {S0} is nics[0]'s too"),
    (_request((S0, None), (S1, [])),  # type: ignore[arg-type]
     "nics[1].interface: expected an object or null, got []"),
    (_request((S0, None), (S1, _iface(mtu=10))),
     "nics[1].interface.mtu: 10 is outside 68..65535"),
    (_request((S0, _iface(routes=[{"family": 4, "destination": ""}]))),
     "nics[0].interface.routes[0].: a default route needs a gateway"),
    (_request((S0, _iface()), (S1, _iface(mac="aa:bb:cc:dd:ee:02"))),
     "nics[1].interface.name: 'eth0' is nics[0]'s too"),
])
def test_validate_request_rejects_with_one_line_naming_the_field(request_: Any,
                                                                 message: str) -> None:
    with pytest.raises(InvalidNetconfig) as info:
        ns.validate_request(request_)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def _lo() -> Link:
    return Link(1, "lo", "00:00:00:00:00:00", 65536, True)


def test_locate_by_permanent_address_then_current_mac_then_interface_mac() -> None:
    # virtio-net: the slot MAC is the permanent address, whatever the MAC is now
    nic0 = Link(2, "eth0", "aa:bb:cc:dd:ee:01", 1500, True, perm_mac=S0)
    # no permanent address, found by its current MAC (a veth, or a NIC never rebound)
    nic1 = Link(3, "sb5b00000001", S1, 1500, False)
    # no permanent address and a new MAC: found by the MAC its interface asks for
    nic2 = Link(4, "eth2", "aa:bb:cc:dd:ee:03", 1500, True)
    slots = ns.validate_request(_request((S0, None), (S1, _iface("eth1", S0)),
                                         (S2, _iface("eth2", "aa:bb:cc:dd:ee:03"))))
    ns.locate(slots, [_lo(), nic0, nic2], [_lo(), nic1])
    assert [(s.nic(), s.in_spare) for s in slots] == [(nic0, False), (nic1, True), (nic2, False)]


def test_locate_by_the_mac_the_agent_last_gave_an_unbound_slot() -> None:
    """A NIC without a permanent address, unbound after a MAC change, is still found."""
    nic = Link(3, "eth0", "aa:bb:cc:dd:ee:01", 1500, True)
    slots = ns.validate_request(_request((S0, None)))
    ns.locate(slots, [_lo(), nic], [_lo()], {S0: "aa:bb:cc:dd:ee:01"})
    assert slots[0].link is nic


def test_locate_never_gives_one_link_to_two_slots() -> None:
    # slot 1's interface MAC is slot 0's NIC's current MAC: slot 0 keeps it (permanent address)
    nic0 = Link(2, "eth0", "aa:bb:cc:dd:ee:01", 1500, True, perm_mac=S0)
    slots = ns.validate_request(_request((S0, None), (S1, _iface())))
    with pytest.raises(NetconfigError) as info:
        ns.locate(slots, [nic0], [])
    assert slots[0].link is nic0
    assert str(info.value) == (f"eth0: no interface has slot MAC {S1} "
                               "nor MAC address aa:bb:cc:dd:ee:01")


def test_locate_names_a_missing_unbound_slot() -> None:
    slots = ns.validate_request(_request((S0, None)))
    with pytest.raises(NetconfigError, match=rf"^slot 0 \({S0}\): no interface has slot MAC {S0}$"):
        ns.locate(slots, [_lo()], [_lo()])


def _located(request: dict[str, Any], root: list[Link], spare: list[Link]) -> list[ns.Slot]:
    slots = ns.validate_request(request)
    ns.locate(slots, root, spare)
    return slots


def test_plan_moves_out_the_unbound_and_the_misnamed() -> None:
    root = [_lo(), Link(2, "eth0", "aa:bb:cc:dd:ee:01", 1500, True, perm_mac=S0),
            Link(3, "eth1", "aa:bb:cc:dd:ee:02", 1500, True, perm_mac=S1),
            Link(4, "enp0s3", S2, 1500, False, perm_mac=S2)]
    # swap the names of slots 0 and 1 (both go through the spare namespace), unbind slot 2
    request = _request((S0, _iface("eth1")), (S1, _iface("eth0", "aa:bb:cc:dd:ee:02")),
                       (S2, None))
    slots = _located(request, root, [_lo()])
    assert [s.index for s in ns._plan(slots, root, [_lo()])] == [0, 1, 2]
    # already as asked: nothing moves
    request = _request((S0, _iface("eth0")), (S1, _iface("eth1", "aa:bb:cc:dd:ee:02")))
    assert ns._plan(_located(request, root[:3], []), root[:3], []) == []


def test_plan_refuses_a_name_clash_before_anything_moves() -> None:
    spare = [_lo(), Link(2, "sb5b00000000", S0, 1500, False)]
    other = Link(5, "eth0", "aa:bb:cc:dd:ee:09", 1500, True)  # not a slot NIC
    slots = _located(_request((S0, _iface())), [_lo(), other], spare)
    with pytest.raises(NetconfigError, match=r"^eth0: moving to the root namespace: another "
                                             r"interface has the name eth0 there$"):
        ns._plan(slots, [_lo(), other], spare)
    # something else took a spare name (a NIC the request no longer lists, say)
    root = [_lo(), Link(3, "eth3", S1, 1500, False)]
    taken = [_lo(), Link(2, "sb5b00000001", S2, 1500, False)]
    slots = _located(_request((S1, None)), root, taken)
    with pytest.raises(NetconfigError, match=r"^slot 0 .*: moving to the spare namespace as "
                                             r"sb5b00000001: another interface has that name"):
        ns._plan(slots, root, taken)


def test_spare_names_follow_the_slot_mac_not_the_place_in_the_request() -> None:
    """A slot leaving the request (its NIC is being unplugged) renames no other slot's NIC."""
    spare = [_lo(), Link(2, "sb5b00000000", S0, 1500, False)]
    root = [_lo(), Link(3, "eth3", S1, 1500, False)]
    slots = _located(_request((S1, None), (S0, None)), root, spare)
    assert [s.spare_name for s in ns._plan(slots, root, spare)] == ["sb5b00000001"]


def test_the_verb_declares_the_request_shape() -> None:
    verbs.CONFIGURE_NETWORK.check(_request((S0, None), (S1, _iface())))
    assert verbs.CONFIGURE_NETWORK.errors == (E_NETWORK,) and E_NETWORK == "network"
    with pytest.raises(ValueError, match=r"params.nics\[0\].interface: expected dict or None"):
        verbs.CONFIGURE_NETWORK.check({"nics": [{"slot_mac": S0, "interface": "eth0"}]})


def test_handler_answers_network_errors_with_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    from strongbox.agent.handlers import network
    from strongbox.agent.server import RequestError

    seen: list[Any] = []

    def fail(request: Any) -> dict[str, Any]:
        seen.append(request)
        raise NetconfigError("eth0: setting MTU 9000: Invalid argument")

    monkeypatch.setattr(ns, "apply", fail)
    with pytest.raises(RequestError) as info:
        network.configure_network(None, {"nics": [], "hint": 1})  # type: ignore[arg-type]
    assert (info.value.code, info.value.message) == (
        E_NETWORK, "eth0: setting MTU 9000: Invalid argument")
    assert seen == [{"nics": []}]  # keys the declaration does not know are not passed on


def test_nothing_network_related_is_imported_at_agent_boot() -> None:
    code = ("import sys; from strongbox.agent.handlers import all_handlers; all_handlers(); "
            "print(sorted(m for m in sys.modules if 'net' in m.rpartition('.')[2]))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True)
    assert out.stdout.strip() == "['strongbox.agent.handlers.network']"
