"""Container networking through podman's default (CNI) bridge: runc proves each check,
strongbox (jailed by default) passes the same checks.

podman sets up the container's network namespace (a veth on cni-podman0, the
address its host-local IPAM picked, portmap's rules for ``-p``) whatever the
runtime; with strongbox the VM must carry that configuration to the guest's
eth0. The checks: eth0 holds the address ``podman inspect`` reports; a
published port answers on the host's 127.0.0.1; the container reaches a
server the test runs on the bridge's host address; two containers reach each
other by IP; ``--network=none`` leaves only ``lo``; the engine's hosts, hostname and
resolv.conf arrive unchanged and resolve. The ``-p`` check also runs
with template clones and pooled VMs, and two of those side by side must differ in MAC
and IP.
Every variant runs with the jailer unless STRONGBOX_TEST_UNJAILED=1 (conftest).

Traffic goes only to 127.0.0.1 and to addresses on cni-podman0.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.framework import netcheck
from tests.framework.podman import IMAGE, Podman
from tests.framework.procs import qemu_pids, wait_until

pytestmark = [
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc (the baseline) is not installed"),
]

NETWORK = "podman"  # podman's default network, bridge cni-podman0
#: The runtimes (paths) this module ran containers with: the teardown removes with each.
_USED: set[str] = set()


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podman]:
    """One private podman store for the module; every container of every runtime goes after."""
    pm = Podman(tmp_path_factory.mktemp("podman-net"))
    pm.load_busybox()
    yield pm
    for runtime in _USED:
        pm("rm", "--all", "--force", "-t", "0", timeout=300, runtime=runtime)
    assert wait_until(lambda: not qemu_pids(str(pm.root)), 20), "a QEMU of this module survived"


@pytest.fixture
def runtime(request: pytest.FixtureRequest, podman: Podman) -> str:
    """The OCI runtime podman runs the test's containers with (a path)."""
    name = request.param
    if name == "runc":
        path = shutil.which("runc")
        assert path is not None
    else:
        request.getfixturevalue("guest_assets")
        fixture = {"strongbox-template": "template_config",
                   "strongbox-pool": "pool_config"}.get(name, "cold_config")
        config = request.getfixturevalue(fixture)
        if name == "strongbox-pool":  # both VMs free: the test's containers take pooled ones
            from tests.framework.pool import pool_status

            assert wait_until(lambda: pool_status(config)["free"] == 2, 120)
        path = str(podman.runtime_wrapper(name, config))
    _USED.add(path)
    return path


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@contextmanager
def _container(podman: Podman, runtime: str, *args: str) -> Iterator[str]:
    """``podman run -d ARGS`` under a fresh name, removed (at once, -t 0) afterwards."""
    name = _name("net")
    podman("run", "-d", "--name", name, *args, check=True, runtime=runtime)
    try:
        yield name
    finally:
        podman("rm", "--force", "-t", "0", name, timeout=120, runtime=runtime)


def _inspect(podman: Podman, runtime: str, name: str, field: str) -> str:
    out = podman("inspect", "--format", "{{" + field + "}}", name, check=True, runtime=runtime)
    return out.stdout.strip()


def _eth0(podman: Podman, runtime: str, name: str) -> tuple[str, str]:
    """(IPv4, MAC) of the container's eth0, seen from inside via exec."""
    out = podman("exec", name, "sh", "-c", netcheck.ETH0_SCRIPT, runtime=runtime)
    assert out.returncode == 0, f"no eth0 in the container: {out.stdout}{out.stderr}"
    return netcheck.eth0_of(out.stdout)


def _subnet_and_gateway(podman: Podman) -> tuple[str, str]:
    """The default network's subnet and the bridge's host address (its gateway)."""
    subnet = podman("network", "inspect", "--format",
                    "{{range .Subnets}}{{.Subnet}} {{.Gateway}}{{end}}", NETWORK,
                    check=True).stdout.split()
    return subnet[0], subnet[1]


IDLE = (IMAGE, "sleep", "600")


@pytest.mark.parametrize("runtime", netcheck.runtime_params(), indirect=True)
def test_eth0_has_the_address_podman_assigned(podman: Podman, runtime: str) -> None:
    with _container(podman, runtime, *IDLE) as name:
        assigned = _inspect(podman, runtime, name, ".NetworkSettings.IPAddress")
        mac = _inspect(podman, runtime, name, ".NetworkSettings.MacAddress")
        subnet, _ = _subnet_and_gateway(podman)
        assert netcheck.in_subnet(assigned, subnet), (assigned, subnet)
        assert _eth0(podman, runtime, name) == (assigned, mac.lower())
        trie = podman("exec", name, "cat", "/proc/net/fib_trie", check=True, runtime=runtime)
        assert assigned in netcheck.local_ipv4s_of_fib_trie(trie.stdout)


@pytest.mark.parametrize("runtime", netcheck.runtime_params("strongbox-template",
                                                         "strongbox-pool"), indirect=True)
def test_published_port_answers_on_host_loopback(podman: Podman, runtime: str) -> None:
    """``-p 127.0.0.1:PORT:80``: portmap's DNAT into the namespace, then (strongbox) the VM."""
    port = netcheck.free_port()
    with _container(podman, runtime, "-p", f"127.0.0.1:{port}:80", IMAGE, "sh", "-c",
                    netcheck.httpd_script(80)):
        assert netcheck.fetch(f"http://127.0.0.1:{port}/") == netcheck.PAYLOAD


@pytest.mark.parametrize("runtime", netcheck.runtime_params(), indirect=True)
def test_container_reaches_a_server_on_the_bridge(podman: Podman, runtime: str) -> None:
    """The bridge's host address (cni-podman0's gateway) exists once a container is on
    it: start the container, then the server, then fetch from inside."""
    with _container(podman, runtime, *IDLE) as name:
        _, gateway = _subnet_and_gateway(podman)
        assigned = _inspect(podman, runtime, name, ".NetworkSettings.IPAddress")
        with netcheck.host_server(gateway) as server:
            got = podman("exec", name, "sh", "-c", netcheck.wget_script(server.url),
                         timeout=120, runtime=runtime)
        assert got.returncode == 0, got.stderr
        assert got.stdout.encode() == netcheck.PAYLOAD
        assert (assigned, "/from-host") in server.requests, server.requests


@pytest.mark.parametrize("runtime", netcheck.runtime_params(), indirect=True)
def test_two_containers_reach_each_other_by_ip(podman: Podman, runtime: str) -> None:
    with _container(podman, runtime, IMAGE, "sh", "-c", netcheck.httpd_script(8080)) as web:
        address = _inspect(podman, runtime, web, ".NetworkSettings.IPAddress")
        got = podman("run", "--rm", IMAGE, "sh", "-c",
                     netcheck.wget_script(f"http://{address}:8080/"),
                     timeout=180, runtime=runtime)
        assert got.returncode == 0, got.stderr
        assert got.stdout.encode() == netcheck.PAYLOAD


@pytest.mark.parametrize("runtime", netcheck.runtime_params("strongbox-template"),
                         indirect=True)
def test_network_none_has_only_loopback(podman: Podman, runtime: str) -> None:
    got = podman("run", "--rm", "--network=none", IMAGE, "ls", "/sys/class/net",
                 runtime=runtime)
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["lo"]


@pytest.mark.parametrize("runtime", netcheck.runtime_params("strongbox-template",
                                                         "strongbox-pool", cold=False),
                         indirect=True)
def test_clones_side_by_side_have_distinct_macs_and_ips(podman: Podman, runtime: str) -> None:
    """Template clones start from one snapshot: each must still get its own NIC identity
    (the MAC and address podman gave its namespace), not the template's."""
    with _container(podman, runtime, *IDLE) as one, _container(podman, runtime, *IDLE) as two:
        seen = {}
        for name in (one, two):
            ip, mac = _eth0(podman, runtime, name)
            assert ip == _inspect(podman, runtime, name, ".NetworkSettings.IPAddress")
            assert mac == _inspect(podman, runtime, name, ".NetworkSettings.MacAddress").lower()
            seen[name] = (ip, mac)
        assert seen[one][0] != seen[two][0], seen
        assert seen[one][1] != seen[two][1], seen



@pytest.mark.parametrize("runtime", netcheck.runtime_params(), indirect=True)
def test_the_engines_hosts_resolv_conf_and_hostname_work_unchanged(podman: Podman,
                                                                   runtime: str) -> None:
    """podman's /etc/hosts, /etc/hostname and /etc/resolv.conf (bind mounts in the spec)
    reach the container as podman wrote them, and a name from /etc/hosts resolves."""
    _, gateway = _subnet_and_gateway(podman)
    with _container(podman, runtime, "--hostname", "sbbox", "--add-host",
                    f"sbhost:{gateway}", *IDLE) as name:
        assigned = _inspect(podman, runtime, name, ".NetworkSettings.IPAddress")
        files = podman("exec", name, "sh", "-c", "cat /etc/hostname; echo ---; "
                       "cat /etc/hosts; echo ---; cat /etc/resolv.conf", runtime=runtime)
        assert files.returncode == 0, files.stderr
        hostname, hosts, resolv = files.stdout.split("---\n")
        assert hostname.strip() == "sbbox"
        entries = [line.split() for line in hosts.splitlines() if line.strip()]
        assert [gateway, "sbhost"] in entries and any(
            e[0] == assigned and "sbbox" in e[1:] for e in entries), hosts
        path = _inspect(podman, runtime, name, ".ResolvConfPath")
        with open(path) as written:
            assert resolv == written.read()
        with netcheck.host_server(gateway) as server:
            url = server.url.replace(gateway, "sbhost", 1)
            got = podman("exec", name, "sh", "-c", netcheck.wget_script(url), timeout=120,
                         runtime=runtime)
        assert got.returncode == 0, got.stderr
        assert got.stdout.encode() == netcheck.PAYLOAD
