"""Egress limits where a sandbox may connect, on the host's side of its NIC.

The policy is the operator's ``[network] egress_allow`` (a list of CIDRs; absent: no
limit) narrowed, never widened, by the container's annotation ``io.strongbox.egress``
(``"all"``, ``"none"`` or comma-separated CIDRs; the SDK's ``network=`` sets it).

It is enforced where the guest cannot reach: on the ingress of each NIC slot's tap
(what the guest sends), in the sandbox's network namespace on the host, by one eBPF
classifier (:mod:`.egressbpf`) at a priority ahead of the tap's redirect to the
engine's veth (:mod:`.tcfilter`, 49150): the host's loopback (``127.0.0.0/8``, ``::1``)
and the link-local metadata addresses (``169.254.0.0/16``, ``fd00:ec2::254``) are
dropped for every sandbox with a policy; an IP packet to an allowed network, or any
with no list, goes on to the redirect; every other IPv4 and IPv6 packet is dropped.
ARP (and the rest of what is not IP) goes on too, so the guest still finds its
gateway. The classifier is stateless: a reply the guest sends to a connection from
outside the allowed set is dropped too, which is what "only these destinations" means
for a sandbox.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any

from strongbox.errors import ConfigError
from strongbox.sandbox.network import egressbpf

ANNOTATION = "io.strongbox.egress"
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: Never reachable from a sandbox with a policy: the host's loopback, and link-local
#: metadata services (clouds answer credentials there).
DENIED = tuple(ipaddress.ip_network(n) for n in
               ("127.0.0.0/8", "169.254.0.0/16", "::1/128", "fd00:ec2::254/128"))
#: The priority of the policy's filter on a tap's ingress: before tcfilter's redirect.
PRIO = 49100
ETH_P_ALL = 0x0003
INGRESS = 0xFFFF0000
#: The most networks a policy names (the program grows by a few instructions each).
_MAX_ALLOWED = 256


@dataclass(frozen=True)
class Egress:
    """Where the guest may send IP packets: ``allow`` None is anywhere but :data:`DENIED`."""

    allow: tuple[IPNetwork, ...] | None

    def describe(self) -> str:
        if self.allow is None:
            return "all but the host's loopback and metadata"
        return ", ".join(map(str, self.allow)) or "none"


def parse(values: list[str], where: str) -> tuple[IPNetwork, ...]:
    """CIDRs (host bits allowed, as ``10.0.0.1/24``) or one ConfigError naming ``where``."""
    nets = []
    for value in values:
        try:
            nets.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not an IP network (CIDR)") from None
    if len(nets) > _MAX_ALLOWED:
        raise ConfigError(f"{where}: at most {_MAX_ALLOWED} networks, got {len(nets)}")
    return tuple(nets)


def policy(annotations: dict[str, str], allowed: list[str] | None) -> Egress | None:
    """The sandbox's policy: the operator's list (``allowed``), narrowed by the annotation."""
    operator = None if allowed is None else parse(allowed, "network.egress_allow")
    value = annotations.get(ANNOTATION)
    if value is None:
        return None if operator is None else Egress(operator)
    value = value.strip()
    if value == "all":
        return Egress(operator)
    wanted = () if value == "none" else parse(value.split(","), f"annotation {ANNOTATION}")
    if operator is not None:
        for net in wanted:
            if not any(net.version == o.version and net.subnet_of(o)  # type: ignore[arg-type]
                       for o in operator):
                raise ConfigError(f"annotation {ANNOTATION}: {net} is outside [network] "
                                  "egress_allow; an annotation may only narrow it")
    return Egress(wanted)


def install(ipr: Any, tap: int, egress: Egress) -> None:
    """The policy's classifier on the ingress (qdisc made by the caller) of ``tap``."""
    fd = egressbpf.load(egressbpf.compile_policy(DENIED, egress.allow))
    try:
        ipr.tc("add-filter", "bpf", tap, parent=INGRESS, prio=PRIO, protocol=ETH_P_ALL,
               fd=fd, name="strongbox-egress", direct_action=True)
    finally:
        os.close(fd)  # the filter holds the program


def remove(ipr: Any, tap: int) -> None:
    """The policy's classifier off ``tap``'s ingress (its slot is spliced anew)."""
    ipr.tc("del-filter", index=tap, parent=INGRESS, info=(PRIO << 16) | socket.htons(ETH_P_ALL))
