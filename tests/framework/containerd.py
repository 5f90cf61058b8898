"""A private containerd for tests: its own root, state dir, sockets and namespace.

The shim binary is found on PATH (the project's virtualenv is put first);
strongbox's runtime root for the shim's VMs is private too (STRONGBOX_ROOT
is inherited by the shims containerd starts).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.framework.bundle import make_rootfs
from tests.framework.images import oci_archive

RUNTIME = "io.containerd.strongbox.v2"
IMAGE = "localhost/busybox:latest"
NAMESPACE = "sbtest"

CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{address}"
[ttrpc]
  address = "{address}.ttrpc"
[debug]
  level = "{level}"
"""


class Containerd:
    """One containerd daemon and a ``ctr`` bound to it."""

    def __init__(self, base: Path, level: str = "info") -> None:
        self.base = base
        self.address = base / "containerd.sock"
        self.config = base / "config.toml"
        self.sbroot = base / "sbroot"
        self.log = base / "containerd.log"
        self.config.write_text(CONFIG.format(root=base / "root", state=base / "state",
                                             address=self.address, level=level))
        bindir = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": f"{bindir}:{os.environ.get('PATH', '')}",
                    "STRONGBOX_ROOT": str(self.sbroot)}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
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

    def ctr(self, *args: str, timeout: float = 180, input: bytes | None = None
            ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["ctr", "--address", str(self.address), "-n", NAMESPACE, *args],
                              capture_output=True, timeout=timeout, env=self.env, input=input)

    def ctr_argv(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.address), "-n", NAMESPACE, *args]

    def import_busybox(self) -> None:
        rootfs = make_rootfs(self.base / "image-rootfs")
        archive = oci_archive(rootfs, self.base / "busybox.tar", name=IMAGE)
        result = self.ctr("images", "import", str(archive))
        if result.returncode != 0:
            raise RuntimeError(f"ctr images import failed: {result.stderr.decode()}")
