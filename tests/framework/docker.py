"""Docker (Debian's docker.io 20.10) as a real client of strongbox, private to one session.

The daemon gets its own data root, exec root, pid file, socket and client
configuration under one temporary directory, and starts its own containerd
there (state, sockets and pid file under the exec root, so nothing meets the
system's containerd or the one tests/framework/containerd.py starts; shim
sockets under /run/containerd/s are named by a hash of the address).

Nothing may leave the machine or change the host's network: no iptables
rules, no IP forwarding sysctl, and no docker0 bridge (``"bridge": "none"``),
so a container has only its loopback, as ``--network none`` asks; the one
network the private daemon offers is ``none``.

``Docker(base, network=True)`` is the exception the networking tests need:
the daemon gets a bridge of the session's own (``sbdk<hex>``, a free /24 of
10.213.0.0/16, made here and deleted by :meth:`Docker.cleanup`) as its
default ``bridge`` network. Still no iptables rule, no forwarding and no
masquerading: ``-p`` goes through docker-proxy (the userland proxy, on for
that daemon only), container to container stays on the bridge, and the
bridge's own address is the host end a container can reach.

strongbox is registered the way an operator would: ``strongbox install
--only docker`` edits the daemon.json that dockerd reads (``--config-file``),
naming a wrapper that sets strongbox's configuration file and root. dockerd
20.10 gives every runtime runc's own root (``<exec root>/runtime-runc/moby``);
strongbox keeps its state in a root of its own (``<sbroot>/clients/...``) and
leaves that directory to ``runc list`` (see ``strongbox.runtime.paths``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.framework.bundle import make_rootfs
from tests.framework.containerd import free_subnet
from tests.framework.images import docker_archive
from tests.framework.procs import pids_with_cmdline, qemu_pids, wait_until

DOCKER = "/usr/bin/docker"  # never /usr/local/bin/docker: an unrelated binary
DOCKERD = "/usr/sbin/dockerd"
IMAGE = "localhost/busybox:latest"
#: dockerd 20.10 writes its identity here whatever its other paths say (no flag
#: moves it as root); a key this session made is removed again.
TRUST_KEY = Path("/etc/docker/key.json")

#: Everything that would touch the host's network is off; the storage driver
#: copies layers (no overlay mounts to leak); containers' cgroups sit under a
#: parent of this session's own.
SETTINGS = {
    "bridge": "none",
    "iptables": False,
    "ip-forward": False,
    "ip-masq": False,
    "userland-proxy": False,
    "storage-driver": "vfs",
    "log-driver": "json-file",
    "shutdown-timeout": 10,
}


def installed() -> bool:
    return os.access(DOCKERD, os.X_OK) and os.access(DOCKER, os.X_OK)


class Docker:
    """One private dockerd, a ``docker`` client bound to it, and strongbox registered."""

    def __init__(self, base: Path, *, network: bool = False) -> None:
        self.base = base
        self.network = network
        #: With ``network``: the bridge, its subnet and its (host, gateway) address.
        self.bridge = "sbdk" + secrets.token_hex(3) if network else None
        self.subnet = free_subnet() if network else None
        self.gateway = str(next(self.subnet.hosts())) if self.subnet is not None else None
        self.data_root = base / "data"
        self.exec_root = base / "exec"
        self.socket = base / "docker.sock"
        self.pidfile = base / "dockerd.pid"
        self.config = base / "daemon.json"
        self.log = base / "dockerd.log"
        self.sbroot = base / "sbroot"
        self.runtime = base / "strongbox-runtime"
        self.cgroup_parent = f"sbtest-docker-{base.name}"
        self.runtime_env = base / "runtime.env"
        # dockerd outlives a test module, whose mode (cold, templates) picks the config
        # file: the wrapper reads it from runtime.env on every call (use_config).
        self.runtime.write_text(f"#!/bin/sh\nexport STRONGBOX_ROOT={self.sbroot}\n"
                                f". {self.runtime_env}\n"
                                f"exec {sys.executable} -m strongbox \"$@\"\n")
        self.runtime.chmod(0o755)
        self.use_config(None)
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}",
                    "DOCKER_CONFIG": str(base / "client"), "STRONGBOX_ROOT": str(self.sbroot)}
        self.proc: subprocess.Popen[bytes] | None = None
        self._made_key = False

    def use_config(self, config: str | None) -> None:
        """The strongbox configuration file the runtime uses from now on (None: defaults)."""
        line = f"export STRONGBOX_CONFIG={config}" if config else "unset STRONGBOX_CONFIG"
        self.runtime_env.write_text(line + "\n")

    def register(self) -> None:
        """Write the daemon's settings, then let ``strongbox install`` add the runtime."""
        settings: dict[str, object] = {**SETTINGS, "cgroup-parent": self.cgroup_parent}
        if self.bridge is not None:
            settings.update({"bridge": self.bridge, "userland-proxy": True})
        self.config.write_text(json.dumps(settings, indent=2) + "\n")
        subprocess.run([sys.executable, "-m", "strongbox", "install", "--only", "docker",
                        "--docker-config", str(self.config), "--runtime-path",
                        str(self.runtime)], check=True, capture_output=True, text=True)

    def _make_bridge(self) -> None:
        """The private bridge dockerd is told to use (it never creates one of that name)."""
        assert self.bridge is not None and self.subnet is not None
        if (Path("/sys/class/net") / self.bridge).exists():
            return
        subprocess.run(["ip", "link", "add", "name", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev",
                        self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)

    def start(self) -> None:
        if self.bridge is not None:
            self._make_bridge()
        self._made_key = not TRUST_KEY.exists()
        argv = [DOCKERD, "--config-file", str(self.config), "--data-root", str(self.data_root),
                "--exec-root", str(self.exec_root), "--pidfile", str(self.pidfile),
                "-H", f"unix://{self.socket}"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, env=self.env,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.socket.exists() and self("version").returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not start:\n{self.log.read_text()[-3000:]}")

    def __call__(self, *args: str, timeout: float = 180, check: bool = False,
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([DOCKER, *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def argv(self, *args: str) -> list[str]:
        return [DOCKER, *args]

    def load_busybox(self) -> None:
        rootfs = make_rootfs(self.base / "image-rootfs")
        archive = docker_archive(rootfs, self.base / "busybox.tar", name=IMAGE)
        self("load", "-i", str(archive), check=True)

    def stop(self) -> None:
        """Remove every container, stop dockerd (and so its containerd), then reap the rest."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError):  # a wedged daemon: go on
                ids = self("ps", "-aq", timeout=60).stdout.split()
                if ids:
                    self("rm", "-f", *ids, timeout=300)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        # Shims outlive a containerd that died; QEMUs their strongbox left must not.
        for pid in pids_with_cmdline(str(self.exec_root)) + qemu_pids(str(self.sbroot)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pids_with_cmdline(str(self.exec_root)), 10)
        if self._made_key:
            TRUST_KEY.unlink(missing_ok=True)

    def cleanup(self) -> None:
        """Unmount what dockerd left mounted beneath the session, remove it all.

        dockerd mounts its data root onto itself, and each container's shm and
        network namespace beneath the data and exec roots.
        """
        for mount_point in reversed(_mounts_under(self.base)):
            subprocess.run(["umount", "-l", mount_point], capture_output=True)
        for hierarchy in Path("/sys/fs/cgroup").glob("*"):
            for leftover in sorted(hierarchy.glob(f"{self.cgroup_parent}/**/"), reverse=True):
                with contextlib.suppress(OSError):
                    leftover.rmdir()
        if self.bridge is not None and (Path("/sys/class/net") / self.bridge).exists():
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def _mounts_under(base: Path) -> list[str]:
    prefix = str(base) + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            found.append(point)
    return found


def session_base() -> Path:
    """A short path (unix socket paths are at most 107 bytes), on a disk, not tmpfs."""
    return Path(tempfile.mkdtemp(prefix="sbd-", dir="/tmp"))
