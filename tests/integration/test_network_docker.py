"""Container networking through Docker's own bridge networking: runc proves each check,
strongbox (jailed by default) passes the same checks.

dockerd (through libnetwork's prestart hook) puts a veth of its bridge in the
container's namespace with an address of its own IPAM; with strongbox the VM
must carry it to the guest's eth0. The checks: eth0 holds the address
``docker inspect`` reports; ``-p 127.0.0.1:PORT:80`` answers on the host
(docker-proxy: this daemon writes no iptables rule); the container reaches a
server the test runs on the bridge's host address; two containers reach each
other by IP.

The daemon is this module's own (tests/framework/docker.py with
``network=True``): test_docker.py's session daemon has no bridge at all, by
design, and its containers must keep getting ``--network none`` semantics.
Traffic goes only to 127.0.0.1 and to addresses on that daemon's bridge.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.framework import netcheck
from tests.framework.containerd import free_subnet
from tests.framework.docker import IMAGE, Docker, installed, session_base
from tests.framework.procs import qemu_pids, wait_until

pytestmark = [
    pytest.mark.skipif(not installed(), reason="docker.io is not installed"),
    pytest.mark.skipif(shutil.which("runc") is None, reason="runc (the baseline) is not installed"),
]


@pytest.fixture(scope="module")
def docker(request: pytest.FixtureRequest) -> Iterator[Docker]:
    """A private dockerd with a bridge of its own; strongbox runs in cold mode (jailed unless
    STRONGBOX_TEST_UNJAILED=1, as in the other suites)."""
    daemon = Docker(session_base(), network=True)
    try:
        daemon.register()
        cold = request.getfixturevalue("cold_config")
        daemon.use_config(str(cold) if cold is not None else None)
        daemon.start()
        daemon.load_busybox()
        yield daemon
        ids = daemon("ps", "-aq", check=True).stdout.split()
        if ids:
            daemon("rm", "-f", *ids, timeout=300)
        assert wait_until(lambda: not qemu_pids(str(daemon.sbroot)), 20)
    finally:
        daemon.stop()
        daemon.cleanup()
    assert daemon.bridge is not None
    assert not (Path("/sys/class/net") / daemon.bridge).exists(), "the bridge survived"


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> str:
    """The name of the runtime dockerd runs the test's containers with."""
    if request.param != "runc":
        request.getfixturevalue("guest_assets")
    return str(request.param)


@contextmanager
def _container(docker: Docker, runtime: str, *args: str) -> Iterator[str]:
    """``docker run -d --runtime RUNTIME ARGS`` under a fresh name, removed afterwards."""
    name = f"net-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--runtime", runtime, "--name", name, *args, check=True)
    try:
        yield name
    finally:
        docker("rm", "-f", name, timeout=120)


def _inspect(docker: Docker, name: str, field: str) -> str:
    return docker("inspect", "-f", "{{" + field + "}}", name, check=True).stdout.strip()


IDLE = (IMAGE, "sleep", "600")
PARAMS = netcheck.runtime_params()


@pytest.mark.parametrize("runtime", PARAMS, indirect=True)
def test_eth0_has_the_address_docker_assigned(docker: Docker, runtime: str) -> None:
    with _container(docker, runtime, *IDLE) as name:
        assigned = _inspect(docker, name, ".NetworkSettings.IPAddress")
        mac = _inspect(docker, name, ".NetworkSettings.MacAddress")
        assert docker.subnet is not None
        assert netcheck.in_subnet(assigned, str(docker.subnet)), (assigned, docker.subnet)
        out = docker("exec", name, "sh", "-c", netcheck.ETH0_SCRIPT)
        assert out.returncode == 0, f"no eth0 in the container: {out.stdout}{out.stderr}"
        assert netcheck.eth0_of(out.stdout) == (assigned, mac.lower())


@pytest.mark.parametrize("runtime", PARAMS, indirect=True)
def test_published_port_answers_on_host_loopback(docker: Docker, runtime: str) -> None:
    port = netcheck.free_port()
    with _container(docker, runtime, "-p", f"127.0.0.1:{port}:80", IMAGE, "sh", "-c",
                    netcheck.httpd_script(80)):
        assert netcheck.fetch(f"http://127.0.0.1:{port}/") == netcheck.PAYLOAD


@pytest.mark.parametrize("runtime", PARAMS, indirect=True)
def test_container_reaches_a_server_on_the_bridge(docker: Docker, runtime: str) -> None:
    assert docker.gateway is not None
    with netcheck.host_server(docker.gateway) as server, \
            _container(docker, runtime, *IDLE) as name:
        assigned = _inspect(docker, name, ".NetworkSettings.IPAddress")
        got = docker("exec", name, "sh", "-c", netcheck.wget_script(server.url),
                     timeout=120)
        assert got.returncode == 0, got.stderr
        assert got.stdout.encode() == netcheck.PAYLOAD
        assert (assigned, "/from-host") in server.requests, server.requests


@pytest.mark.parametrize("runtime", PARAMS, indirect=True)
def test_two_containers_reach_each_other_by_ip(docker: Docker, runtime: str) -> None:
    with _container(docker, runtime, IMAGE, "sh", "-c", netcheck.httpd_script(8080)) as web:
        address = _inspect(docker, web, ".NetworkSettings.IPAddress")
        got = docker("run", "--rm", "--runtime", runtime, IMAGE, "sh", "-c",
                     netcheck.wget_script(f"http://{address}:8080/"), timeout=180)
        assert got.returncode == 0, got.stderr
        assert got.stdout.encode() == netcheck.PAYLOAD


@pytest.mark.parametrize("runtime", PARAMS, indirect=True)
def test_network_connect_and_disconnect_reach_a_running_container(docker: Docker,
                                                                  runtime: str) -> None:
    """``docker network connect`` puts a second veth into a running container's namespace:
    strongbox's watch (``enable_netmon``) carries it to the guest, usable, and
    ``disconnect`` takes it away again, as with runc."""
    subnet, net = free_subnet(), f"sbnet{uuid.uuid4().hex[:6]}"
    gateway = str(next(subnet.hosts()))
    docker("network", "create", "--subnet", str(subnet), "--gateway", gateway, "-o",
           f"com.docker.network.bridge.name=sbdk{uuid.uuid4().hex[:6]}", net, check=True)
    try:
        with _container(docker, runtime, *IDLE) as name:
            docker("network", "connect", net, name, check=True)
            second = _inspect(docker, name, f".NetworkSettings.Networks.{net}.IPAddress")
            assert netcheck.in_subnet(second, str(subnet)), second

            def addresses() -> str:
                return str(docker("exec", name, "ip", "-4", "addr", "show").stdout)

            assert wait_until(lambda: f"inet {second}/" in addresses(), 60, 0.5), addresses()
            with netcheck.host_server(gateway) as server:
                got = docker("exec", name, "sh", "-c", netcheck.wget_script(server.url),
                             timeout=120)
            assert got.returncode == 0 and got.stdout.encode() == netcheck.PAYLOAD, got.stderr
            assert (second, "/from-host") in server.requests, server.requests
            docker("network", "disconnect", net, name, check=True)
            assert wait_until(lambda: f"inet {second}/" not in addresses(), 60, 0.5)
            eth0 = docker("exec", name, "sh", "-c", netcheck.ETH0_SCRIPT)
            assert netcheck.eth0_of(eth0.stdout)[0] == _inspect(
                docker, name, ".NetworkSettings.IPAddress")  # the first one is untouched
    finally:
        docker("network", "rm", net, timeout=60)
