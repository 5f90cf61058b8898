"""A network namespace shaped the way an engine leaves one, for tests without a VM.

A fresh named namespace holds one end of a veth pair (an IPv4 /24, an IPv6 /64
and default routes via the host end); the other end is in the host with the
gateway addresses. Frames and packets in tests go only over these veths. The
namespace and the host end are deleted on exit, which removes the veths too.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


def ip(*args: str) -> str:
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

    def links(self) -> set[str]:
        return {str(link["ifname"]) for link in self.ns_json("link", "show")}

    def ingress_qdiscs(self) -> set[str]:
        return {str(q["dev"]) for q in self.tc_json("qdisc", "show") if q["kind"] == "ingress"}


@contextlib.contextmanager
def engine_world() -> Iterator[World]:
    tag = uuid.uuid4().hex[:8]
    name, veth, peer = f"sbt-{tag}", f"sbc{tag}", f"sbh{tag}"
    try:
        ip("netns", "add", name)
        ip("link", "add", peer, "type", "veth", "peer", "name", veth)
        ip("link", "set", veth, "netns", name)
        ip("-n", name, "link", "set", veth, "mtu", "1400", "up")
        ip("-n", name, "addr", "add", "10.231.7.2/24", "dev", veth)
        ip("-n", name, "addr", "add", "fd00:5b:7::2/64", "dev", veth, "nodad")
        ip("-n", name, "route", "add", "default", "via", "10.231.7.1")
        ip("-n", name, "-6", "route", "add", "default", "via", "fd00:5b:7::1")
        ip("link", "set", peer, "mtu", "1400", "up")
        ip("addr", "add", "10.231.7.1/24", "dev", peer)
        yield World(f"/run/netns/{name}", name, veth, peer)
    finally:
        subprocess.run(["ip", "link", "del", peer], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
