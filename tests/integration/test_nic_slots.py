"""NIC slots on real netlink, no VM: taps made before QEMU, bound to veths as they appear.

Each test gets a namespace shaped as an engine leaves one (``networld``) and
drives :class:`SandboxNetwork` as the launch path does: open (taps in the
namespace), sync (bind interfaces, the agent's request), close or a crash
followed by :func:`slots.reap` from the run directory's record. Root, no
guest assets.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongbox.config import NetworkConfig
from strongbox.errors import SandboxError
from strongbox.sandbox.network import slots
from strongbox.sandbox.network.slots import SandboxNetwork, slot_mac
from tests.framework.networld import World, engine_world, ip

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates namespaces and veths: root")

CONFIG = NetworkConfig()


@pytest.fixture
def world() -> Iterator[World]:
    with engine_world() as made:
        yield made


def _open(world: World, tmp_path: Path, config: NetworkConfig = CONFIG) -> SandboxNetwork:
    return SandboxNetwork.open(config, sandbox_id=world.name, netns=world.netns,
                               run_dir=tmp_path)


def _taps(world: World) -> set[str]:
    return {name for name in world.links() if name.startswith("sbt") and name != world.veth}


def test_open_makes_a_tap_per_slot_and_sync_binds_the_engines_veth(world: World,
                                                                   tmp_path: Path) -> None:
    net = _open(world, tmp_path)
    try:
        assert _taps(world) == set(net.taps) and len(net.taps) == CONFIG.nic_slots
        assert [n.mac for n in net.nics()] == [slot_mac(0), slot_mac(1)]
        request = net.sync()
        assert request is not None
        first, second = request["nics"]
        assert first["slot_mac"] == slot_mac(0) and second == {"slot_mac": slot_mac(1),
                                                               "interface": None}
        iface = first["interface"]
        assert (iface["name"], iface["mtu"]) == (world.veth, 1400)
        assert {a["address"] for a in iface["addresses"]} == {"10.231.7.2", "fd00:5b:7::2"}
        assert json.loads(json.dumps(request)) == request
        assert world.ingress_qdiscs() == {world.veth, net.taps[0]}
        record = json.loads((tmp_path / slots.RECORD).read_text())
        assert record == {"netns": world.netns, "taps": net.taps,
                          "splices": [[world.veth, net.taps[0]]]}
        net.mark_applied(request)
        assert net.sync() is None  # nothing changed: the agent is not asked again
    finally:
        net.close()
    assert not _taps(world) and not world.ingress_qdiscs()
    assert not (tmp_path / slots.RECORD).exists()


def test_an_interface_added_later_takes_the_next_slot(world: World, tmp_path: Path) -> None:
    """Docker's hook adds its veth after create: the next sync binds it."""
    net = _open(world, tmp_path)
    try:
        net.mark_applied(net.sync() or {})
        ip("link", "add", "sblate0", "type", "veth", "peer", "name", "sblate1")
        ip("link", "set", "sblate1", "netns", world.name)
        ip("-n", world.name, "addr", "add", "10.231.8.2/24", "dev", "sblate1")
        request = net.sync()
        assert request is not None
        assert [n["interface"]["name"] for n in request["nics"]] == [world.veth, "sblate1"]
        net.mark_applied(request)
        ip("-n", world.name, "link", "del", "sblate1")  # and when it goes, its slot frees
        request = net.sync()
        assert request is not None and request["nics"][1]["interface"] is None
        assert world.ingress_qdiscs() == {world.veth, net.taps[0]}
    finally:
        subprocess.run(["ip", "link", "del", "sblate0"], capture_output=True)
        net.close()


def test_more_interfaces_than_slots_is_one_error_naming_the_interface(world: World,
                                                                      tmp_path: Path) -> None:
    net = _open(world, tmp_path, dataclasses.replace(CONFIG, nic_slots=1))
    try:
        ip("link", "add", "sbfull0", "type", "veth", "peer", "name", "sbfull1")
        ip("link", "set", "sbfull1", "netns", world.name)
        with pytest.raises(SandboxError, match="network interface sbfull1: no free NIC slot "
                           r"\(a sandbox has 1: \[network\] nic_slots\)"):
            net.sync()
    finally:
        subprocess.run(["ip", "link", "del", "sbfull0"], capture_output=True)
        net.close()
    assert not _taps(world) and not world.ingress_qdiscs()


def test_an_interface_no_nic_can_stand_for_is_refused_by_name(world: World,
                                                              tmp_path: Path) -> None:
    ip("-n", world.name, "tuntap", "add", "mode", "tun", "name", "sbl3tun")  # no Ethernet
    net = _open(world, tmp_path)
    try:
        with pytest.raises(SandboxError, match="network interface sbl3tun: link type 65534 "
                           "is not Ethernet"):
            net.sync()
    finally:
        net.close()
    assert not _taps(world) and not world.ingress_qdiscs()


def test_a_missing_namespace_is_one_error_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="network namespace /run/netns/sb-none does not "
                       "exist"):
        SandboxNetwork.open(CONFIG, sandbox_id="x", netns="/run/netns/sb-none",
                            run_dir=tmp_path)
    with pytest.raises(SandboxError, match="/etc/hostname: not a network namespace"):
        SandboxNetwork.open(CONFIG, sandbox_id="x", netns="/etc/hostname", run_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_without_a_path_the_sandbox_gets_a_new_empty_namespace(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    net = SandboxNetwork.open(CONFIG, sandbox_id="fresh", netns=None, run_dir=tmp_path)
    try:
        assert os.readlink(net.path) != os.readlink("/proc/self/ns/net")
        out = subprocess.run(["nsenter", f"--net={net.path}", "ip", "-o", "link"],
                             check=True, capture_output=True, text=True).stdout
        names = sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines())
        assert names == sorted(["lo", *net.taps])
        request = net.sync()
        assert request is not None and all(n["interface"] is None for n in request["nics"])
    finally:
        net.close()
    assert set(os.listdir("/proc/self/fd")) <= before


def test_model_none_has_no_slots(world: World, tmp_path: Path) -> None:
    net = _open(world, tmp_path, dataclasses.replace(CONFIG, internetworking_model="none"))
    try:
        assert net.nics() == () and net.sync() is None and not _taps(world)
    finally:
        net.close()


def test_after_a_crash_reap_removes_our_filters_from_the_record_alone(world: World,
                                                                      tmp_path: Path) -> None:
    """kill -9 of QEMU and its owner: the taps die with the last fd, the record stays."""
    net = _open(world, tmp_path)
    net.sync()
    for fd in net._fds:  # what the kernel does to a dead process's fds
        os.close(fd)
    net._fds = []
    os.close(net.netns_fd)
    deadline = time.monotonic() + 3
    while _taps(world) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _taps(world) and world.veth in world.ingress_qdiscs()
    slots.reap(tmp_path)
    assert not world.ingress_qdiscs()
    slots.reap(tmp_path)  # idempotent
