"""Egress policies: what the operator's list and the annotation mean, and what the
compiled classifier decides for each frame (run by the kernel: BPF_PROG_TEST_RUN)."""

from __future__ import annotations

import ipaddress
import os
import re
import struct
from collections.abc import Iterator

import pytest

from strongbox.errors import ConfigError
from strongbox.sandbox.network import egressbpf
from strongbox.sandbox.network.egress import ANNOTATION, DENIED, Egress, parse, policy

PASS, DROP = egressbpf.TC_ACT_UNSPEC, egressbpf.TC_ACT_SHOT


def _nets(*values: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(v) for v in values)


def test_no_list_and_no_annotation_is_no_policy() -> None:
    assert policy({}, None) is None


def test_the_annotation_sets_a_policy() -> None:
    assert policy({ANNOTATION: "all"}, None) == Egress(None)
    assert policy({ANNOTATION: "none"}, None) == Egress(())
    assert policy({ANNOTATION: "10.0.0.1/24, fd00::/8"}, None) == \
        Egress(_nets("10.0.0.0/24", "fd00::/8"))


def test_the_annotation_narrows_the_operators_list_and_never_widens_it() -> None:
    operator = ["10.0.0.0/8"]
    assert policy({}, operator) == Egress(_nets("10.0.0.0/8"))
    assert policy({ANNOTATION: "all"}, operator) == Egress(_nets("10.0.0.0/8"))
    assert policy({ANNOTATION: "10.1.0.0/16"}, operator) == Egress(_nets("10.1.0.0/16"))
    with pytest.raises(ConfigError, match=r"11.0.0.0/8 is outside \[network\] egress_allow"):
        policy({ANNOTATION: "11.0.0.0/8"}, operator)
    with pytest.raises(ConfigError, match="outside"):
        policy({ANNOTATION: "::/0"}, operator)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "example.com", ""])
def test_a_bad_network_is_one_error_naming_where(bad: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"annotation {ANNOTATION}")):
        policy({ANNOTATION: bad}, None)
    with pytest.raises(ConfigError, match=r"network\.egress_allow"):
        parse([bad], "network.egress_allow")


def _frame(dst: str) -> bytes:
    address = ipaddress.ip_address(dst)
    mac = b"\x02" * 6 + b"\x04" * 6
    if address.version == 4:
        header = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0]) + bytes(4) + address.packed
        return mac + struct.pack("!H", 0x0800) + header + bytes(20)
    header = bytes([0x60, 0, 0, 0, 0, 20, 6, 64]) + bytes(16) + address.packed
    return mac + struct.pack("!H", 0x86DD) + header + bytes(20)


ARP = b"\xff" * 6 + b"\x04" * 6 + struct.pack("!H", 0x0806) + bytes(28)


@pytest.fixture
def verdicts() -> Iterator[object]:
    loaded: list[int] = []

    def verdict(allowed: tuple[str, ...] | None, frame: bytes) -> int:
        nets = None if allowed is None else _nets(*allowed)
        try:
            fd = egressbpf.load(egressbpf.compile_policy(DENIED, nets))
        except PermissionError:
            pytest.skip("loading eBPF needs CAP_BPF")
        loaded.append(fd)
        return egressbpf.verdict(fd, frame)

    yield verdict
    for fd in loaded:
        os.close(fd)


@pytest.mark.parametrize(("dst", "expected"), [
    ("10.232.1.1", PASS), ("10.232.1.2", DROP), ("8.8.8.8", DROP),
    ("127.0.0.1", DROP), ("127.1.2.3", DROP), ("169.254.169.254", DROP),
    ("fd00:1::5", PASS), ("fe80::1", PASS), ("ff02::1:ff00:1", PASS), ("2001:db8::1", DROP),
    ("::1", DROP), ("fd00:ec2::254", DROP),
])
def test_an_allow_list_passes_only_its_networks(verdicts: object, dst: str,
                                                expected: int) -> None:
    assert verdicts(("10.232.1.1/32", "fd00:1::/64"), _frame(dst)) == expected  # type: ignore[operator]


@pytest.mark.parametrize(("dst", "expected"), [
    ("10.232.1.1", PASS), ("200.1.1.1", PASS), ("2001:db8::1", PASS),
    ("127.0.0.1", DROP), ("169.254.0.1", DROP), ("::1", DROP),
])
def test_all_keeps_out_the_hosts_loopback_and_metadata(verdicts: object, dst: str,
                                                       expected: int) -> None:
    assert verdicts(None, _frame(dst)) == expected  # type: ignore[operator]


def test_none_drops_every_ip_packet_but_lets_arp_through(verdicts: object) -> None:
    assert verdicts((), _frame("10.0.0.1")) == DROP  # type: ignore[operator]
    assert verdicts((), _frame("fe80::1")) == DROP  # type: ignore[operator]
    assert verdicts((), ARP) == PASS  # type: ignore[operator]


def test_an_ipv4_only_list_drops_all_ipv6(verdicts: object) -> None:
    assert verdicts(("0.0.0.0/0",), _frame("fe80::1")) == DROP  # type: ignore[operator]
    assert verdicts(("0.0.0.0/0",), _frame("1.2.3.4")) == PASS  # type: ignore[operator]
