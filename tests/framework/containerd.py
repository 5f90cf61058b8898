"""A private containerd for tests: its own root, state dir, sockets and namespace.

The shim binary is found on PATH (the project's virtualenv is put first);
strongbox's runtime root for the shim's VMs is private too (STRONGBOX_ROOT
is inherited by the shims containerd starts).

With ``cri=True`` the CRI plugin is on (Debian 12 has no crictl; the tests
drive it with tests/framework/cri.py), with runtime handlers ``runc`` and
``strongbox``, a pause image built here (busybox running ``sleep``), and a
CNI network private to the daemon (:class:`CniNetwork`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.framework.bundle import make_rootfs
from tests.framework.images import oci_archive
from tests.framework.procs import qemu_pids, wait_until

RUNTIME = "io.containerd.strongbox.v2"
IMAGE = "localhost/busybox:latest"
NAMESPACE = "sbtest"

CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{cri}"io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{address}"
[ttrpc]
  address = "{address}.ttrpc"
[debug]
  level = "{level}"
"""

CRI_NAMESPACE = "k8s.io"
PAUSE_IMAGE = "localhost/pause:latest"
CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins

# Why each CRI setting: the sandbox image must be local (no registry reachable);
# stream_server_port 0 so two daemons do not fight over CRI's default 10010;
# restrict_oom_score_adj because this process lacks CAP_SYS_RESOURCE, so runc
# cannot lower a container's oom_score_adj below ours; the host has no AppArmor
# or SELinux; cgroupfs (no systemd on this host); netns mounts under the private
# state dir, not /var/run/netns, so teardown knows which are ours.
CRI_CONFIG = """\
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  disable_cgroup = false
  systemd_cgroup = false
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.strongbox]
      runtime_type = "{runtime}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin_dir}"
    conf_dir = "{conf_dir}"
    max_conf_num = 1
"""


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.213.0.0/16 no route on this host overlaps.

    Not 10.88.0.0/16: podman's default CNI network holds it. Random, so
    concurrent daemons (other tests, other engineers) rarely pick the same one.
    """
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True).stdout
    used = []
    for line in routes.splitlines():
        word = line.split()[0] if line.split() else ""
        if word[:1].isdigit():
            used.append(ipaddress.ip_network(word, strict=False))
    candidates = [ipaddress.IPv4Network(f"10.213.{n}.0/24") for n in range(1, 255)]
    random.shuffle(candidates)
    for net in candidates:
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError("no free /24 in 10.213.0.0/16")


#: Public name for the other frameworks' private bridges (tests/framework/docker.py).
free_subnet = _free_subnet


class CniNetwork:
    """A bridge network of one test daemon: its conflist, bridge and IPAM state.

    The CNI plugins are the system's (CNI_BIN_DIR), everything they write is
    private: host-local's leases go to ``dataDir`` here, not /var/lib/cni. The
    bridge masquerades nothing (ipMasq false): pods need no way out, and no
    NAT rule must outlive the test. containerd's CRI plugin attaches ``lo``
    itself with the ``loopback`` plugin from the same bin_dir.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.conf_dir = base / "net.d"
        self.ipam_dir = base / "ipam"
        self.bridge = "sbcri" + secrets.token_hex(3)
        self.subnet = _free_subnet()
        self.name = f"strongbox-test-{self.bridge}"

    def conflist(self) -> dict[str, object]:
        return {
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                {"type": "bridge", "bridge": self.bridge, "isGateway": True,
                 "ipMasq": False, "hairpinMode": True,
                 "ipam": {"type": "host-local", "dataDir": str(self.ipam_dir),
                          "ranges": [[{"subnet": str(self.subnet)}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }

    def write(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "10-strongbox-test.conflist").write_text(
            json.dumps(self.conflist(), indent=2))

    def bridge_ports(self) -> list[str]:
        """Interfaces enslaved to the bridge (a pod's host-side veth each)."""
        ports = Path("/sys/class/net") / self.bridge / "brif"
        return sorted(p.name for p in ports.iterdir()) if ports.exists() else []

    def bridge_exists(self) -> bool:
        return (Path("/sys/class/net") / self.bridge).exists()

    def remove(self) -> None:
        for port in self.bridge_ports():
            subprocess.run(["ip", "link", "delete", port], capture_output=True)
        if self.bridge_exists():
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)


class Containerd:
    """One containerd daemon and a ``ctr`` bound to it."""

    def __init__(self, base: Path, level: str = "info", *, cri: bool = False) -> None:
        self.base = base
        self.address = base / "containerd.sock"
        self.config = base / "config.toml"
        self.sbroot = base / "sbroot"
        self.log = base / "containerd.log"
        self.state = base / "state"
        self.net = CniNetwork(base / "cni") if cri else None
        text = CONFIG.format(root=base / "root", state=self.state, address=self.address,
                             level=level, cri="" if cri else '"io.containerd.grpc.v1.cri", ')
        if self.net is not None:
            text += CRI_CONFIG.format(pause=PAUSE_IMAGE, runtime=RUNTIME, bin_dir=CNI_BIN_DIR,
                                      conf_dir=self.net.conf_dir)
        self.config.write_text(text)
        bindir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
                    "STRONGBOX_ROOT": str(self.sbroot)}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.net is not None:
            self.net.write()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(["containerd", "--config", str(self.config)],
                                         stdout=log, stderr=log, env=self.env,
                                         start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.address.exists() and self.ctr("version").returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"containerd did not start:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def ctr(self, *args: str, timeout: float = 180, input: bytes | None = None,
            namespace: str = NAMESPACE) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["ctr", "--address", str(self.address), "-n", namespace, *args],
                              capture_output=True, timeout=timeout, env=self.env, input=input)

    def ctr_argv(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.address), "-n", NAMESPACE, *args]

    def import_busybox(self, namespace: str = NAMESPACE) -> None:
        rootfs = make_rootfs(self.base / "image-rootfs")
        archive = oci_archive(rootfs, self.base / "busybox.tar", name=IMAGE)
        self._import(archive, namespace)

    def import_cri_images(self) -> None:
        """busybox and the pause image (busybox running ``sleep``) into CRI's namespace.

        CRI looks images up only in ``k8s.io`` and would try to pull a missing
        sandbox image from a registry, which this machine cannot reach.
        """
        self.import_busybox(CRI_NAMESPACE)
        rootfs = self.base / "image-rootfs"
        archive = oci_archive(rootfs, self.base / "pause.tar", name=PAUSE_IMAGE,
                              cmd=["sleep", "2147483647"])
        self._import(archive, CRI_NAMESPACE)

    def _import(self, archive: Path, namespace: str) -> None:
        result = self.ctr("images", "import", str(archive), namespace=namespace)
        if result.returncode != 0:
            raise RuntimeError(f"ctr images import failed: {result.stderr.decode()}")

    @property
    def cri_socket(self) -> Path:
        """The CRI gRPC endpoint: CRI is served on containerd's own gRPC socket."""
        return self.address

    def cleanup_cri(self) -> None:
        """After :meth:`stop`: remove the bridge, the IPAM state and CRI's netns mounts.

        containerd removes a pod's netns and CNI attachment on RemovePodSandbox;
        this is for what a failed test left: the bridge outlives every pod, and
        a netns of a pod never removed stays mounted under the private state dir.
        """
        if self.net is None:
            return
        netns_dir = self.state / "io.containerd.grpc.v1.cri" / "netns"
        for ns in sorted(netns_dir.glob("*")) if netns_dir.exists() else []:
            subprocess.run(["umount", "-l", str(ns)], capture_output=True)
            ns.unlink(missing_ok=True)
        self.net.remove()


@contextmanager
def ctr_daemon(base: Path) -> Iterator[Containerd]:
    """A started containerd with busybox imported; on exit every task and container it
    still has is removed (a failed test's too) and no QEMU of it may survive."""
    daemon = Containerd(base)
    daemon.start()
    daemon.import_busybox()
    try:
        yield daemon
    finally:
        for task in daemon.ctr("task", "ls", "-q").stdout.decode().split():
            daemon.ctr("task", "kill", "-s", "KILL", task)
            daemon.ctr("task", "delete", "-f", task)
        for container in daemon.ctr("container", "ls", "-q").stdout.decode().split():
            daemon.ctr("container", "delete", container)
        daemon.stop()
    assert wait_until(lambda: not qemu_pids(str(daemon.sbroot)), 10)


@contextmanager
def cri_daemon(base: Path) -> Iterator[Containerd]:
    """A started containerd with CRI, its own CNI bridge and the CRI images; on exit
    whatever a failed test left (netns mounts, veths, QEMU) goes and the bridge must too."""
    daemon = Containerd(base, cri=True)
    try:
        daemon.start()
        daemon.import_cri_images()
        yield daemon
    finally:
        daemon.stop()
        daemon.cleanup_cri()
        for pid in qemu_pids(str(daemon.sbroot)):
            os.kill(pid, signal.SIGKILL)
    assert daemon.net is not None and not daemon.net.bridge_exists(), \
        "the CNI bridge survived teardown"

