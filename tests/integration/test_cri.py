"""containerd's CRI plugin runs pods with runc and with strongbox, driven like a kubelet.

Debian 12 has no crictl; tests/framework/cri.py is the client. The runc
handler goes first: it is cheap and checks the client, the CRI config and the
CNI network on their own, so a strongbox failure after it is strongbox's.
Guest networking is not asserted yet (the pod IP is CNI's, on the host side).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.framework.containerd import CRI_NAMESPACE, IMAGE, Containerd, cri_daemon
from tests.framework.cri import CriClient, CriError, container_config, pod_config
from tests.framework.procs import qemu_pids, wait_until

pytestmark = [
    pytest.mark.skipif(shutil.which("containerd") is None, reason="containerd not installed"),
    pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(),
                       reason="containernetworking-plugins not installed"),
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    with cri_daemon(tmp_path_factory.mktemp("cri")) as ctrd:
        yield ctrd


@pytest.fixture
def cri(daemon: Containerd) -> Iterator[CriClient]:
    with CriClient(daemon.cri_socket) as client:
        yield client


def _leftovers(daemon: Containerd) -> dict[str, list[str]]:
    """What CRI left in containerd's k8s.io namespace: containers and tasks."""
    out = {}
    for kind in ("containers", "tasks"):
        listing = daemon.ctr(kind, "ls", "-q", namespace=CRI_NAMESPACE).stdout.decode()
        out[kind] = listing.split()
    return out


def _pod_lifecycle(cri: CriClient, daemon: Containerd, handler: str, tmp_path: Path,
                   while_running: Callable[[str], None] = lambda _: None) -> None:
    """RunPodSandbox .. RemovePodSandbox of one pod with one container, checking each step.

    ``while_running(container_id)`` runs while the container is up, for the
    handler's own checks.
    """
    assert daemon.net is not None
    logs = tmp_path / "logs"
    logs.mkdir()
    pod = pod_config(f"pod-{handler}", str(uuid.uuid4()), log_directory=logs)
    pod_id = cri.run_pod_sandbox(pod, handler)
    status = cri.pod_sandbox_status(pod_id, verbose=True)
    assert status.state == "SANDBOX_READY"
    assert status.runtime_handler == handler
    assert ipaddress.ip_address(status.ip) in daemon.net.subnet, status.ip
    netns = status.netns_path()
    assert netns is not None and Path(netns).exists(), status.info.keys()
    assert len(daemon.net.bridge_ports()) == 1, daemon.net.bridge_ports()

    config = container_config("box", IMAGE, command=["sleep", "3600"], log_path="box.log")
    container_id = cri.create_container(pod_id, config, pod)
    assert cri.container_status(container_id).state == "CONTAINER_CREATED"
    cri.start_container(container_id)
    info = cri.container_status(container_id)
    assert info.state == "CONTAINER_RUNNING", info
    assert info.image.endswith(IMAGE) or info.image == IMAGE, info.image

    hi = cri.exec_sync(container_id, ["echo", "hi"])
    assert (hi.stdout, hi.stderr, hi.exit_code) == (b"hi\n", b"", 0)
    failed = cri.exec_sync(container_id, ["sh", "-c", "echo oops >&2; exit 3"])
    assert (failed.stderr, failed.exit_code) == (b"oops\n", 3)
    while_running(container_id)

    cri.stop_container(container_id, timeout=2)
    info = cri.container_status(container_id)
    assert info.state == "CONTAINER_EXITED", info
    cri.remove_container(container_id)
    with pytest.raises(CriError) as gone:
        cri.container_status(container_id)
    assert gone.value.code == "NOT_FOUND"

    cri.stop_pod_sandbox(pod_id)
    assert cri.pod_sandbox_status(pod_id).state == "SANDBOX_NOTREADY"
    cri.remove_pod_sandbox(pod_id)
    with pytest.raises(CriError) as gone:
        cri.pod_sandbox_status(pod_id)
    assert gone.value.code == "NOT_FOUND"
    assert not Path(netns).exists(), f"netns {netns} left behind"
    assert daemon.net.bridge_ports() == [], "a veth of the pod is still on the bridge"
    assert _leftovers(daemon) == {"containers": [], "tasks": []}


def test_cri_version(cri: CriClient) -> None:
    version = cri.version()
    assert version["runtime_name"] == "containerd"
    assert version["runtime_api_version"] == "v1"


def test_runc_pod_lifecycle(cri: CriClient, daemon: Containerd, tmp_path: Path) -> None:
    _pod_lifecycle(cri, daemon, "runc", tmp_path)
    assert not qemu_pids(str(daemon.sbroot))


def test_unknown_handler_is_refused(cri: CriClient) -> None:
    with pytest.raises(CriError) as refused:
        cri.run_pod_sandbox(pod_config("pod-nohandler", str(uuid.uuid4())), "no-such-handler")
    assert "no-such-handler" in refused.value.details


@pytest.mark.vm
def test_strongbox_pod_lifecycle(cri: CriClient, daemon: Containerd, tmp_path: Path,
                                 guest_assets: dict[str, Path]) -> None:
    """The same flow in a microVM; its QEMU must be gone once the pod is removed."""
    host_kernel = os.uname().release

    def in_a_vm(container_id: str) -> None:
        assert qemu_pids(str(daemon.sbroot)), "no QEMU runs for the strongbox pod"
        uname = cri.exec_sync(container_id, ["uname", "-r"])
        assert uname.exit_code == 0 and uname.stdout.decode().strip() != host_kernel, \
            "the container runs on the host kernel, not in the guest"

    _pod_lifecycle(cri, daemon, "strongbox", tmp_path, in_a_vm)
    assert wait_until(lambda: not qemu_pids(str(daemon.sbroot)), 15), \
        f"QEMU of the strongbox pod survived: {qemu_pids(str(daemon.sbroot))}"
