"""Pod networking through containerd's CRI plugin and CNI: runc proves each check,
strongbox (jailed by default) passes the same checks.

containerd makes each pod's network namespace and has CNI (the test daemon's
own bridge ``sbcri<hex>``, host-local IPAM, portmap) put a veth with the pod's
address there; with strongbox the pod's VM must carry it to the guest's eth0.
The checks: PodSandboxStatus's IP is the one on eth0 inside, and the host
reaches a server in the pod at that IP; a pod reaches another pod by IP; two
containers of one pod talk over 127.0.0.1 (one VM, one network namespace); a
``hostPort`` (portmap) answers on the host.

Traffic goes only to 127.0.0.1 and to addresses on the test daemon's bridge.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.framework import netcheck
from tests.framework.containerd import IMAGE, Containerd, cri_daemon
from tests.framework.cri import CriClient, CriError, container_config, pod_config
from tests.framework.procs import qemu_pids, wait_until

pytestmark = [
    pytest.mark.skipif(shutil.which("containerd") is None, reason="containerd not installed"),
    pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(),
                       reason="containernetworking-plugins not installed"),
]

PORT = 8080  # where a pod's busybox httpd listens


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    """A private containerd with CRI and its own CNI bridge (test_cri.py's is module-scoped
    too); whatever a failed test left (netns mounts, veths, the bridge) goes at the end."""
    with cri_daemon(tmp_path_factory.mktemp("cri-net")) as ctrd:
        yield ctrd


@pytest.fixture
def cri(daemon: Containerd) -> Iterator[CriClient]:
    with CriClient(daemon.cri_socket) as client:
        yield client


@pytest.fixture
def handler(request: pytest.FixtureRequest, daemon: Containerd) -> Iterator[str]:
    """The CRI runtime handler; after a strongbox test no QEMU of the daemon survives."""
    if request.param != "runc":
        request.getfixturevalue("guest_assets")
    yield str(request.param)
    assert wait_until(lambda: not qemu_pids(str(daemon.sbroot)), 20), "a pod's QEMU survived"


@dataclass
class Pod:
    id: str
    ip: str
    containers: dict[str, str]  # name -> container id


@contextmanager
def _pod(cri: CriClient, handler: str, tmp_path: Path, containers: dict[str, str],
         port_mappings: Sequence[tuple[int, int]] = ()) -> Iterator[Pod]:
    """A running pod with one container per (name, shell script); removed afterwards."""
    name = f"net-{uuid.uuid4().hex[:8]}"
    logs = tmp_path / name
    logs.mkdir()
    config = pod_config(name, str(uuid.uuid4()), log_directory=logs,
                        port_mappings=port_mappings)
    pod_id = cri.run_pod_sandbox(config, handler)
    try:
        status = cri.pod_sandbox_status(pod_id)
        assert status.state == "SANDBOX_READY", status
        started = {}
        for box, script in containers.items():
            spec = container_config(box, IMAGE, command=["sh", "-c", script],
                                    log_path=f"{box}.log")
            started[box] = cri.create_container(pod_id, spec, config)
            cri.start_container(started[box])
        yield Pod(pod_id, status.ip, started)
    finally:
        with contextlib.suppress(CriError):
            cri.stop_pod_sandbox(pod_id)
        cri.remove_pod_sandbox(pod_id)


def _exec(cri: CriClient, container_id: str, script: str, timeout: int = 120) -> str:
    result = cri.exec_sync(container_id, ["sh", "-c", script], timeout=timeout)
    assert result.exit_code == 0, (result.stdout + result.stderr).decode()
    return result.stdout.decode()


WEB = netcheck.httpd_script(PORT)
IDLE = "exec sleep 3600"
PARAMS = netcheck.runtime_params()


@pytest.mark.parametrize("handler", PARAMS, indirect=True)
def test_pod_ip_is_on_eth0_and_the_host_reaches_it(cri: CriClient, daemon: Containerd,
                                                   handler: str, tmp_path: Path) -> None:
    assert daemon.net is not None
    with _pod(cri, handler, tmp_path, {"web": WEB}) as pod:
        assert netcheck.in_subnet(pod.ip, str(daemon.net.subnet)), pod.ip
        inside = _exec(cri, pod.containers["web"], netcheck.ETH0_SCRIPT)
        assert netcheck.eth0_of(inside)[0] == pod.ip
        assert netcheck.fetch(f"http://{pod.ip}:{PORT}/") == netcheck.PAYLOAD


@pytest.mark.parametrize("handler", PARAMS, indirect=True)
def test_pod_reaches_another_pod_by_ip(cri: CriClient, handler: str, tmp_path: Path) -> None:
    with _pod(cri, handler, tmp_path, {"web": WEB}) as server, \
            _pod(cri, handler, tmp_path, {"client": IDLE}) as client:
        assert server.ip != client.ip
        got = _exec(cri, client.containers["client"],
                    netcheck.wget_script(f"http://{server.ip}:{PORT}/"), timeout=150)
        assert got.encode() == netcheck.PAYLOAD


@pytest.mark.parametrize("handler", PARAMS, indirect=True)
def test_containers_of_one_pod_share_loopback(cri: CriClient, handler: str,
                                              tmp_path: Path) -> None:
    """The pod's containers share one network namespace (under strongbox: one VM's): each
    sees the pod's eth0, and they talk over 127.0.0.1."""
    web = netcheck.httpd_script(PORT, bind="127.0.0.1")
    with _pod(cri, handler, tmp_path, {"web": web, "client": IDLE}) as pod:
        got = _exec(cri, pod.containers["client"],
                    netcheck.wget_script(f"http://127.0.0.1:{PORT}/"), timeout=150)
        assert got.encode() == netcheck.PAYLOAD
        for member in ("web", "client"):
            inside = _exec(cri, pod.containers[member], netcheck.ETH0_SCRIPT)
            assert netcheck.eth0_of(inside)[0] == pod.ip, member


@pytest.mark.parametrize("handler", PARAMS, indirect=True)
def test_host_port_answers_on_host_loopback(cri: CriClient, handler: str,
                                            tmp_path: Path) -> None:
    """A pod's hostPort: portmap DNATs 127.0.0.1:hostPort to the pod's IP."""
    host_port = netcheck.free_port()
    with _pod(cri, handler, tmp_path, {"web": WEB}, port_mappings=[(PORT, host_port)]):
        assert netcheck.fetch(f"http://127.0.0.1:{host_port}/") == \
            netcheck.PAYLOAD
