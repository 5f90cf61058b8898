"""A sandbox's network through the real CLI and shim: the guest's eth0, leaks, bad input.

Each test builds the namespace an engine would (``networld``: a veth end
with an IPv4 and IPv6 address and default routes, its peer in the host) and
hands it to strongbox by path, as podman and CRI do, or adds the veth after
``create`` from a prestart hook, as Docker does. Traffic goes only to the
test's own veth peer. After every test, and after kill -9 of the monitor,
the shim or QEMU followed by delete, the namespace must hold nothing of
strongbox's: no tap, no ingress qdisc, no filter.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.bundle import make_bundle, read_spec, write_spec
from tests.framework.containerd import IMAGE, RUNTIME, Containerd, ctr_daemon
from tests.framework.networld import World, engine_world, ip
from tests.framework.procs import pids_with_cmdline, qemu_pids, wait_until

pytestmark = [pytest.mark.vm]
def show(nic: str = "eth0") -> str:
    """A shell line printing the NIC's MAC, IPv4 setup, the routes and every interface."""
    return (f"cat /sys/class/net/{nic}/address; ip -4 addr show {nic}; ip route; "
            f"ip -6 addr show {nic}; ip -6 route; echo NICS: $(ls /sys/class/net)")


def _nics(out: str) -> list[str]:
    """The guest's interfaces as the container sees them (:func:`show`'s last line)."""
    line = next(x for x in out.splitlines() if x.startswith("NICS:"))
    return sorted(line.split()[1:])


@pytest.fixture
def world() -> Iterator[World]:
    with engine_world() as made:
        yield made


def _nothing_of_ours(world: World) -> None:
    assert wait_until(lambda: not [n for n in world.links()
                                   if n.startswith("sbt") and n != world.veth], 5), world.links()
    # after a dead shim, containerd's clean-up (``shim delete``) runs in the background
    assert wait_until(lambda: not world.ingress_qdiscs(), 10), world.tc_json("qdisc", "show")


def _bundle(tmp: Path, args: list[str], netns: str | None, **changes: object) -> Path:
    bundle = make_bundle(tmp, args, **changes)
    spec = read_spec(bundle)
    namespaces = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
    spec["linux"]["namespaces"] = [*namespaces, {"type": "network", **(
        {"path": netns} if netns else {})}]
    write_spec(bundle, spec)
    return bundle


class Served:
    """An HTTP server on the veth's host end: what the container fetches."""

    def __init__(self, address: str) -> None:
        class Hello(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"hello from the host\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Hello)
        self.url = f"http://{address}:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_guest_gets_the_engines_interface_and_reaches_the_host(world: World, root: Path,
                                                                   tmp_path: Path) -> None:
    served = Served("10.231.7.1")
    try:
        mac = str(world.ns_json("link", "show", world.veth)[0]["address"])
        script = f"{show(world.veth)}; wget -q -O - {served.url}"
        bundle = _bundle(tmp_path / "b", ["sh", "-c", script], world.netns)
        result = cli.run("--root", root, "run", "--bundle", bundle, "net1", timeout=180)
    finally:
        served.close()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.splitlines()[0] == mac
    assert f"{world.veth}" in out and "10.231.7.2/24" in out and "mtu 1400" in out
    assert "default via 10.231.7.1" in out
    assert "inet6 fd00:5b:7::2/64" in out and "default via fd00:5b:7::1" in out  # IPv6 too
    assert _nics(out) == sorted([world.veth, "lo"])  # unused slots are hidden
    assert "hello from the host" in out
    _nothing_of_ours(world)


HOOK = textwrap.dedent("""\
    import json, subprocess, sys
    state = json.load(sys.stdin)
    ns = f"/proc/{state['pid']}/ns/net"
    peer, moved = sys.argv[1], sys.argv[1] + "c"  # eth0 only inside: the host has one
    subprocess.run(["ip", "link", "add", peer, "type", "veth", "peer", "name", moved],
                   check=True)
    subprocess.run(["ip", "link", "set", moved, "netns", ns], check=True)
    inside = ["nsenter", f"--net={ns}", "ip"]
    subprocess.run([*inside, "link", "set", moved, "name", "eth0"], check=True)
    subprocess.run([*inside, "addr", "add", "10.231.9.2/24", "dev", "eth0"], check=True)
    subprocess.run([*inside, "link", "set", "eth0", "up"], check=True)
""")


def test_a_veth_a_prestart_hook_adds_after_create_is_the_guests_at_start(
        root: Path, tmp_path: Path) -> None:
    """Docker's shape: a new namespace without a path, its veth moved in by a hook."""
    hook = tmp_path / "addveth.py"
    hook.write_text(HOOK)
    peer = f"sbhk{os.getpid() % 10000}"
    bundle = _bundle(tmp_path / "b", ["sh", "-c", show()], None, hooks={"prestart": [
        {"path": sys.executable, "args": [sys.executable, str(hook), peer]}]})
    try:
        result = cli.run("--root", root, "run", "--bundle", bundle, "late", timeout=180)
        assert result.returncode == 0, result.stderr
        assert "10.231.9.2/24" in result.stdout
        assert _nics(result.stdout) == ["eth0", "lo"]
    finally:
        subprocess.run(["ip", "link", "del", peer], capture_output=True)


def _create(root: Path, tmp: Path, cid: str, netns: str) -> None:
    bundle = _bundle(tmp / cid, ["sleep", "600"], netns)
    argv = cli.strongbox_argv("--root", root, "create", "--bundle", bundle, cid)
    cli.run_to_files(argv, tmp / f"{cid}.out", tmp / f"{cid}.err").check()


def _monitor(root: Path, cid: str) -> int:
    return int(cli.run("--root", root, "state", cid).check().json()["pid"])


@pytest.mark.parametrize("victim", ["monitor", "qemu"])
def test_kill_9_then_delete_leaves_nothing_in_the_namespace(world: World, root: Path,
                                                            tmp_path: Path, victim: str) -> None:
    _create(root, tmp_path, "k9", world.netns)
    assert world.ingress_qdiscs()  # spliced
    (qemu,) = qemu_pids(str(root))
    os.kill(_monitor(root, "k9") if victim == "monitor" else qemu, signal.SIGKILL)
    assert wait_until(lambda: not qemu_pids(str(root)), 10)
    cli.run("--root", root, "delete", "--force", "k9").check()
    _nothing_of_ours(world)
    vms = root / "vms"
    assert not (vms.exists() and list(vms.iterdir()))


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory, guest_assets: dict[str, Path]
               ) -> Iterator[Containerd]:
    with ctr_daemon(tmp_path_factory.mktemp("ctrdnet")) as daemon:
        yield daemon


@pytest.mark.parametrize("victim", ["shim", "qemu"])
def test_under_the_shim_kill_9_then_delete_leaves_nothing(world: World, containerd: Containerd,
                                                          victim: str) -> None:
    cid = f"shimnet-{victim}"
    run = containerd.ctr("run", "-d", "--runtime", RUNTIME, "--with-ns",
                         f"network:{world.netns}", IMAGE, cid, "sleep", "600")
    assert run.returncode == 0, run.stderr.decode()
    shown = containerd.ctr("task", "exec", "--exec-id", "show", cid, "sh", "-c",
                           show(world.veth))
    assert "10.231.7.2/24" in shown.stdout.decode(), shown.stderr.decode()
    assert world.ingress_qdiscs()
    shims = pids_with_cmdline("strongbox.shim.main", str(containerd.address))
    pid = shims[0] if victim == "shim" else qemu_pids(str(containerd.sbroot))[0]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not qemu_pids(str(containerd.sbroot)), 15)
    if victim == "qemu":  # the shim notices its VM died: the task stops, then deletes
        assert wait_until(lambda: any(
            line.split()[:1] == [cid] and "STOPPED" in line.split()
            for line in containerd.ctr("task", "ls").stdout.decode().splitlines()), 15)
        deleted = containerd.ctr("task", "delete", cid)
        assert deleted.returncode == 0, deleted.stderr.decode()
    else:  # a dead shim: containerd's clean-up (`shim delete`) collects its VM
        containerd.ctr("task", "delete", "-f", cid)
        assert wait_until(lambda: cid not in containerd.ctr("task", "ls", "-q").stdout.decode()
                          .split(), 15)
    removed = containerd.ctr("container", "delete", cid)
    assert removed.returncode == 0, removed.stderr.decode()
    _nothing_of_ours(world)


# --- bad input: one line naming the interface or path, nothing left ---------------------

def _refused(root: Path, tmp: Path, netns: str, *fragments: str,
             config: Path | None = None) -> None:
    bundle = _bundle(tmp / "bad", ["true"], netns)
    prefix: list[str | Path] = ["--config", config] if config else []
    result = cli.run(*prefix, "--root", root, "run", "--bundle", bundle, "bad", timeout=180)
    cli.assert_one_line_error(result, *fragments)
    assert not (root / "containers" / "bad").exists()
    vms = root / "vms"
    assert not (vms.exists() and list(vms.iterdir()))
    assert not qemu_pids(str(root))


def test_a_namespace_path_that_does_not_exist(root: Path, tmp_path: Path) -> None:
    _refused(root, tmp_path, "/run/netns/sb-no-such-ns",
             "network namespace /run/netns/sb-no-such-ns does not exist")


def test_an_interface_the_guest_cannot_take(world: World, root: Path, tmp_path: Path) -> None:
    ip("-n", world.name, "tuntap", "add", "mode", "tun", "name", "sbl3tun")
    _refused(root, tmp_path, world.netns, "network interface sbl3tun", "not Ethernet")
    _nothing_of_ours(world)


def test_a_full_set_of_nic_slots(world: World, root: Path, tmp_path: Path) -> None:
    config = tmp_path / "one-slot.toml"
    config.write_text("[network]\nnic_slots = 1\n")
    ip("link", "add", "sbxfull0", "type", "veth", "peer", "name", "sbxfull1")
    try:
        ip("link", "set", "sbxfull1", "netns", world.name)
        _refused(root, tmp_path, world.netns, "network interface", "no free NIC slot",
                 config=config)
    finally:
        subprocess.run(["ip", "link", "del", "sbxfull0"], capture_output=True)
    _nothing_of_ours(world)


Q35_ONE_SLOT = ('[hypervisor.qemu]\nmachine_type = "q35"\npcie_root_port = 2\n'
                '[network]\nnic_slots = 1\n')


def test_on_q35_an_interface_beyond_the_slots_gets_a_hot_plugged_nic(
        world: World, root: Path, tmp_path: Path) -> None:
    """Kata's netmon: more interfaces than NIC slots, and q35 plugs one NIC per extra one."""
    config = tmp_path / "q35.toml"
    config.write_text(Q35_ONE_SLOT)
    ip("link", "add", "sbxhp0", "type", "veth", "peer", "name", "sbxhp1")
    try:
        ip("link", "set", "sbxhp1", "netns", world.name)
        ip("-n", world.name, "addr", "add", "10.231.12.2/24", "dev", "sbxhp1")
        ip("-n", world.name, "link", "set", "sbxhp1", "up")
        ip("addr", "add", "10.231.12.1/24", "dev", "sbxhp0")
        ip("link", "set", "sbxhp0", "up")
        served = Served("10.231.12.1")
        try:
            script = f"{show('sbxhp1')}; wget -q -O - {served.url}"
            bundle = _bundle(tmp_path / "b", ["sh", "-c", script], world.netns)
            result = cli.run("--config", config, "--root", root, "run", "--bundle", bundle,
                             "hp1", timeout=180)
        finally:
            served.close()
    finally:
        subprocess.run(["ip", "link", "del", "sbxhp0"], capture_output=True)
    assert result.returncode == 0, result.stderr
    assert "10.231.12.2/24" in result.stdout and "hello from the host" in result.stdout
    assert _nics(result.stdout) == sorted([world.veth, "sbxhp1", "lo"])
    _nothing_of_ours(world)


def test_on_q35_a_veth_a_hook_adds_after_create_is_hot_plugged(root: Path, tmp_path: Path
                                                               ) -> None:
    """Docker's shape with every slot taken at create: the hook's veth gets a new NIC."""
    config = tmp_path / "q35.toml"
    config.write_text(Q35_ONE_SLOT.replace("nic_slots = 1", "nic_slots = 1\n").replace(
        "[network]", "[network]\n"))
    hook = tmp_path / "addveth.py"
    hook.write_text(HOOK)
    peers = [f"sbq{os.getpid() % 10000}a", f"sbq{os.getpid() % 10000}b"]
    second = HOOK.replace('"eth0"', '"eth1"').replace("10.231.9.2/24", "10.231.13.2/24")
    (tmp_path / "addveth1.py").write_text(second)
    bundle = _bundle(tmp_path / "b", ["sh", "-c", show("eth1")], None, hooks={"prestart": [
        {"path": sys.executable, "args": [sys.executable, str(hook), peers[0]]},
        {"path": sys.executable, "args": [sys.executable, str(tmp_path / "addveth1.py"),
                                          peers[1]]}]})
    try:
        result = cli.run("--config", config, "--root", root, "run", "--bundle", bundle,
                         "hp2", timeout=180)
        assert result.returncode == 0, result.stderr
        assert "10.231.13.2/24" in result.stdout
        assert _nics(result.stdout) == ["eth0", "eth1", "lo"]
    finally:
        for peer in peers:
            subprocess.run(["ip", "link", "del", peer], capture_output=True)


@pytest.mark.parametrize("machine", ["microvm", "q35"])
def test_an_interface_added_while_it_runs_reaches_the_guest_and_leaves_with_its_veth(
        machine: str, world: World, root: Path, tmp_path: Path) -> None:
    """Kata's netmon (``enable_netmon``): a veth the engine adds to a running sandbox
    reaches the guest, usable (a free slot on microvm, a hot-plugged NIC on q35); deleted,
    it leaves the guest, and q35's NIC is unplugged (its root port then takes another)."""
    config = tmp_path / "c.toml"
    config.write_text(Q35_ONE_SLOT if machine == "q35" else "")
    sb = ["--config", config, "--root", root]
    bundle = _bundle(tmp_path / "b", ["sleep", "600"], world.netns)
    started = cli.run_to_files(cli.strongbox_argv(*sb, "run", "-d", "--bundle", bundle, "nm1"),
                               tmp_path / "out", tmp_path / "err", timeout=180)
    assert started.returncode == 0, started.stderr

    def guest(script: str) -> str:
        return cli.run(*sb, "exec", "nm1", "sh", "-c", script, timeout=60).stdout

    def pci_functions() -> int:
        return int(guest("ls /sys/bus/pci/devices | wc -l").strip() or 0)

    try:
        before = pci_functions()
        ip("link", "add", "sbxnm0", "type", "veth", "peer", "name", "sbxnm1")
        ip("link", "set", "sbxnm1", "netns", world.name)
        ip("-n", world.name, "addr", "add", "10.231.14.2/24", "dev", "sbxnm1")
        ip("-n", world.name, "link", "set", "sbxnm1", "up")
        ip("addr", "add", "10.231.14.1/24", "dev", "sbxnm0")
        ip("link", "set", "sbxnm0", "up")
        assert wait_until(lambda: "10.231.14.2/24" in guest("ip -4 addr show"), 60, 0.5)
        served = Served("10.231.14.1")
        try:
            out = guest(f"{show('sbxnm1')}; wget -q -O - {served.url}")
        finally:
            served.close()
        assert "hello from the host" in out
        assert _nics(out) == sorted([world.veth, "sbxnm1", "lo"])
        assert pci_functions() == before + (1 if machine == "q35" else 0)

        ip("link", "del", "sbxnm0")  # the engine takes it away: both ends go
        assert wait_until(lambda: "sbxnm1" not in guest("ls /sys/class/net"), 60, 0.5)
        assert wait_until(lambda: pci_functions() == before, 60, 0.5)  # q35: unplugged
        if machine == "q35":  # the root port is free again: the next one is plugged there
            ip("link", "add", "sbxnm0", "type", "veth", "peer", "name", "sbxnm2")
            ip("link", "set", "sbxnm2", "netns", world.name)
            assert wait_until(lambda: "sbxnm2" in guest("ls /sys/class/net"), 60, 0.5)
            assert pci_functions() == before + 1
    finally:
        cli.run(*sb, "delete", "--force", "nm1")
        subprocess.run(["ip", "link", "del", "sbxnm0"], capture_output=True)
    _nothing_of_ours(world)


def test_on_q35_more_interfaces_than_slots_and_root_ports_is_one_clear_error(
        world: World, root: Path, tmp_path: Path) -> None:
    """One NIC slot (the engine's veth) and one root port: the second extra interface has
    nowhere to go, and the start fails naming ``pcie_root_port``, leaving nothing."""
    config = tmp_path / "q35.toml"
    config.write_text(Q35_ONE_SLOT.replace("pcie_root_port = 2", "pcie_root_port = 1"))
    ends = [("sbxrp0", "sbxrp1"), ("sbxrp2", "sbxrp3")]
    try:
        for host, inside in ends:
            ip("link", "add", host, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", world.name)
        bundle = _bundle(tmp_path / "b", ["true"], world.netns)
        result = cli.run("--config", config, "--root", root, "run", "--bundle", bundle, "rp1",
                         timeout=180)
    finally:
        for host, _ in ends:
            subprocess.run(["ip", "link", "del", host], capture_output=True)
    cli.assert_one_line_error(result, "no free NIC slot", "pcie_root_port")
    assert not list(root.glob("rp1*")) and not qemu_pids(str(root))
    _nothing_of_ours(world)
