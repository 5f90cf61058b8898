"""Egress rules on real VMs: only the allowed servers answer, whatever the guest does.

The sandbox's network namespace gets two veths, each to a network namespace of its own
with a TCP server on port 8080 (10.232.1.1 and 10.232.2.1, plus 169.254.169.254 beside
the first, where clouds put their metadata service). The guest gets both interfaces;
what it may reach is decided on the host side of its NICs (network/egress.py).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import strongbox
from tests.framework.bundle import make_rootfs
from tests.framework.images import oci_archive
from tests.framework.netcheck import host_server

pytestmark = pytest.mark.usefixtures("guest_assets")

_SERVER = ("import socket,sys\ns=socket.socket()\n"
           "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
           "s.bind(('0.0.0.0',8080));s.listen()\n"
           "while True:\n c,_=s.accept();c.sendall(sys.argv[1].encode()+b'\\n');c.close()\n")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Servers:
    netns: str  # the sandbox's namespace, as a path


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("egress-image")
    return oci_archive(make_rootfs(base / "rootfs"), base / "busybox.oci.tar")


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    tag = uuid.uuid4().hex[:6]
    sandbox_ns, names = f"sbe{tag}", [f"sea{tag}", f"seb{tag}"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in (sandbox_ns, *names):
            _ip("netns", "add", name)
        for i, server_ns in enumerate(names, start=1):
            _ip("-n", sandbox_ns, "link", "add", f"e{i}", "type", "veth", "peer", "name", "s",
                "netns", server_ns)
            _ip("-n", sandbox_ns, "addr", "add", f"10.232.{i}.2/24", "dev", f"e{i}")
            _ip("-n", sandbox_ns, "link", "set", f"e{i}", "up")
            _ip("-n", server_ns, "addr", "add", f"10.232.{i}.1/24", "dev", "s")
            _ip("-n", server_ns, "link", "set", "s", "up")
            procs.append(subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable,
                                           "-c", _SERVER, f"server{i}"]))
        _ip("-n", names[0], "addr", "add", "169.254.169.254/32", "dev", "s")
        _ip("-n", sandbox_ns, "route", "add", "169.254.169.254/32", "dev", "e1")
        time.sleep(0.5)
        yield Servers(f"/run/netns/{sandbox_ns}")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        for name in (sandbox_ns, *names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _reach(sb: strongbox.Sandbox, host: str, port: int = 8080) -> str:
    """What ``host:port`` answers, or "" when nothing does within 3 s."""
    result = sb.run(f"timeout 3 nc {host} {port} </dev/null", timeout_s=30)
    return result.text.strip()


def test_only_the_allowed_server_answers(image: Path, root: Path, servers: Servers) -> None:
    with host_server("127.0.0.1") as on_host:
        with strongbox.Sandbox.create(image, root=root, network=["10.232.1.1/32"],
                                      netns=servers.netns) as sb:
            assert _reach(sb, "10.232.1.1") == "server1"
            assert _reach(sb, "10.232.2.1") == "", "a server outside the list answered"
            assert _reach(sb, "169.254.169.254") == ""
            assert _reach(sb, "127.0.0.1", on_host.port) == ""
            # the guest cannot lift the rule: it owns its side only
            sb.run("ip route flush table main; ip addr flush dev e2; "
                   "ip addr add 10.232.1.77/24 dev e2; ip route add 10.232.2.0/24 dev e2")
            assert _reach(sb, "10.232.2.1") == ""
        assert not on_host.requests, "the host's loopback was reached"


def test_all_still_keeps_the_metadata_address_out(image: Path, root: Path,
                                                  servers: Servers) -> None:
    with strongbox.Sandbox.create(image, root=root, network="all",
                                  netns=servers.netns) as sb:
        assert _reach(sb, "10.232.1.1") == "server1"
        assert _reach(sb, "10.232.2.1") == "server2"
        assert _reach(sb, "169.254.169.254") == "", "the metadata address was reached"


def test_the_operators_list_bounds_every_sandbox(image: Path, root: Path, servers: Servers,
                                                 tmp_path: Path) -> None:
    """``[network] egress_allow`` (config, for the CLI and the shim too); "all" cannot
    widen it, and an annotation outside it is refused before any VM boots."""
    config = tmp_path / "config.toml"
    config.write_text('[network]\negress_allow = ["10.232.2.0/24"]\n')
    with strongbox.Sandbox.create(image, root=root, network="all", netns=servers.netns,
                                  config=config) as sb:
        assert _reach(sb, "10.232.2.1") == "server2"
        assert _reach(sb, "10.232.1.1") == ""
    with pytest.raises(strongbox.errors.SandboxError, match=r"outside.*egress_allow"):
        strongbox.Sandbox.create(image, root=root, network=["10.232.1.0/24"],
                                 netns=servers.netns, config=config)


def test_none_is_loopback_only(image: Path, root: Path) -> None:
    with contextlib.closing(strongbox.Sandbox.create(image, root=root)) as sb:
        assert sb.run("ls /sys/class/net").text.split() == ["lo"]
