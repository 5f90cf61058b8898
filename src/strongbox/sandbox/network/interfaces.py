"""What the engine put in a sandbox's network namespace, as plain data the guest can take.

Kata's tcfilter model gives the guest, for every interface of the namespace
except ``lo``, a NIC with the same MAC, MTU, addresses and routes: the engine
(podman, Docker's hook, a CNI plugin) configured the veth end, and copying
that configuration into the VM is what makes its port mappings and pod IPs
work unchanged. This module only reads the namespace (netlink through
pyroute2, in the namespace) and returns frozen, JSON-ready values; it never
changes anything, so it is safe to call again at container start to see
interfaces a hook added in between.

Left out on purpose, because the guest makes them itself: IPv6 link-local
addresses (fe80::/10, derived from the MAC by the guest kernel), routes the
kernel created for an address (``proto kernel``: the connected subnet, re-made
when the agent adds the address) and every table but ``main`` (``local`` and
``default`` are the kernel's). Taps strongbox made (``sbtap*``) are not the
engine's interfaces and are skipped too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pyroute2 import IPRoute  # type: ignore[import-untyped]

from strongbox.errors import SandboxError
from strongbox.sandbox.network.nsthread import run_in
from strongbox.sandbox.network.taps import TAP_PREFIX

_IFF_LOOPBACK = 0x8
_RT_TABLE_MAIN = 254
_RTPROT_KERNEL = 2
ARPHRD_ETHER = 1
T = TypeVar("T")
_FAMILIES: dict[int, int] = {int(socket.AF_INET): 4, int(socket.AF_INET6): 6}


@dataclass(frozen=True)
class Address:
    """One IP address on an interface, e.g. ``10.88.0.5/16``."""

    address: str
    prefix_len: int
    family: int  # 4 or 6

    def to_agent(self) -> dict[str, Any]:
        return {"address": self.address, "prefix_len": self.prefix_len, "family": self.family}


@dataclass(frozen=True)
class Route:
    """One route of the ``main`` table; ``destination`` is a CIDR (``0.0.0.0/0`` = default)."""

    destination: str
    gateway: str | None
    device: str
    family: int  # 4 or 6

    @property
    def is_default(self) -> bool:
        return self.destination in ("0.0.0.0/0", "::/0")

    def to_agent(self) -> dict[str, Any]:
        return {"destination": self.destination, "gateway": self.gateway,
                "device": self.device, "family": self.family}


@dataclass(frozen=True)
class Interface:
    """One engine-made interface of the namespace, as the guest's NIC must look."""

    name: str
    index: int
    mac: str
    mtu: int
    addresses: tuple[Address, ...]
    routes: tuple[Route, ...]
    #: ARPHRD_* of the link (1: Ethernet, the only kind a virtio-net NIC can stand for).
    link_type: int = ARPHRD_ETHER

    def to_agent(self) -> dict[str, Any]:
        """A JSON-serializable dict (only str/int/None/list/dict) for the guest agent."""
        return {"name": self.name, "index": self.index, "mac": self.mac, "mtu": self.mtu,
                "addresses": [a.to_agent() for a in self.addresses],
                "routes": [r.to_agent() for r in self.routes]}


def is_strongbox_tap(name: str) -> bool:
    """True for the taps strongbox creates (so discovery does not mirror them again)."""
    return name.startswith(TAP_PREFIX)


def in_netns(netns: str, work: Callable[[Any], T]) -> T:
    """Run ``work(ipr)`` in ``netns`` with an ``IPRoute`` there (:func:`.nsthread.run_in`:
    a netlink socket belongs to the namespace of the thread that opened it)."""
    def with_ipr() -> T:
        with IPRoute() as ipr:
            return work(ipr)

    return run_in(netns, with_ipr)


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def _address(msg: Any) -> Address | None:
    family = _FAMILIES.get(int(msg["family"]))
    value = _attr(msg, "IFA_ADDRESS")
    if family is None or value is None:
        return None
    if family == 4 and _attr(msg, "IFA_LOCAL"):
        value = _attr(msg, "IFA_LOCAL")  # on point-to-point links IFA_ADDRESS is the peer
    if family == 6 and ipaddress.IPv6Address(value).is_link_local:
        return None
    return Address(str(value), int(msg["prefixlen"]), family)


def _route(msg: Any, names: dict[int, str]) -> Route | None:
    family = _FAMILIES.get(int(msg["family"]))
    table = _attr(msg, "RTA_TABLE") or msg["table"]
    oif = _attr(msg, "RTA_OIF")
    if family is None or table != _RT_TABLE_MAIN or msg["proto"] == _RTPROT_KERNEL:
        return None
    if oif not in names:
        return None  # multipath or blackhole routes: no single device the guest could use
    dst = _attr(msg, "RTA_DST") or ("0.0.0.0" if family == 4 else "::")
    network = ipaddress.ip_network(f"{dst}/{int(msg['dst_len'])}", strict=False)
    if family == 6 and (network.is_link_local or network.is_multicast):
        return None
    gateway = _attr(msg, "RTA_GATEWAY")
    return Route(str(network), str(gateway) if gateway else None, names[oif], family)


def list_interfaces(netns: str) -> list[Interface]:
    """Every interface of the namespace at ``netns`` but ``lo`` and strongbox's taps."""
    def dump(ipr: Any) -> tuple[list[Any], list[Any], list[Any]]:
        return (list(ipr.get_links()), list(ipr.get_addr()),
                list(ipr.get_routes(table=_RT_TABLE_MAIN)))

    try:
        links, addrs, routes = in_netns(netns, dump)
    except OSError as exc:
        raise SandboxError(f"network namespace {netns}: netlink dump failed: {exc}") from exc
    names: dict[int, str] = {}
    for link in links:
        name = str(_attr(link, "IFLA_IFNAME"))
        if int(link["flags"]) & _IFF_LOOPBACK or name == "lo" or is_strongbox_tap(name):
            continue
        names[int(link["index"])] = name
    result = []
    for link in links:
        index = int(link["index"])
        if index not in names:
            continue
        found = (a for a in map(_address, (m for m in addrs if m["index"] == index)) if a)
        mine = (r for r in (_route(m, names) for m in routes) if r and r.device == names[index])
        result.append(Interface(
            name=names[index], index=index, mac=str(_attr(link, "IFLA_ADDRESS") or ""),
            mtu=int(_attr(link, "IFLA_MTU") or 0), addresses=tuple(found), routes=tuple(mine),
            link_type=int(link["ifi_type"])))
    return result
