"""Podman as the real client of strongbox, with everything private to one test session.

Storage, run root, runtime root and configuration live in a temporary
directory; the busybox image comes from an OCI archive the fixtures build
(no registry). The runtime is a two-line wrapper that points strongbox at
the session's own ``--root``, the way an operator would register it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.framework.bundle import make_rootfs
from tests.framework.images import oci_archive

IMAGE = "localhost/busybox:latest"

#: This machine lacks CAP_SYS_RESOURCE: podman's default ulimits cannot be set
#: on the host side, so the test configuration asks for none.
CONTAINERS_CONF = """\
[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


class Podman:
    """Runs podman against a private store, with strongbox as the runtime."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "strongbox-root"
        self.conf = base / "containers.conf"
        self.conf.write_text(CONTAINERS_CONF)
        # podman does not hand its environment to the runtime: bake the config in.
        self.runtime = self.runtime_wrapper("strongbox-runtime",
                                            os.environ.get("STRONGBOX_CONFIG"))
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def runtime_wrapper(self, name: str, config: str | Path | None) -> Path:
        """A wrapper script ``name`` running strongbox with this session's root and ``config``.

        Several wrappers (cold, templated) share the root, so one check for
        leftover QEMUs covers them all; pass one as ``runtime=``.
        """
        wrapper = self.base / name
        flags = f"--root {self.root}" + (f" --config {config}" if config else "")
        wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m strongbox {flags} \"$@\"\n")
        wrapper.chmod(0o755)
        return wrapper

    def argv(self, *args: str, runtime: str | None = None) -> list[str]:
        return ["podman", "--root", str(self.base / "storage"), "--runroot",
                str(self.base / "run"), "--storage-driver", "vfs", "--tmpdir",
                str(self.base / "tmp"), "--runtime", runtime or str(self.runtime), *args]

    def __call__(self, *args: str, timeout: float = 180, check: bool = False,
                 input: str | None = None, runtime: str | None = None
                 ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args, runtime=runtime), capture_output=True,
                              text=True, timeout=timeout, env=self.env, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def load_busybox(self) -> None:
        rootfs = make_rootfs(self.base / "image-rootfs")
        archive = oci_archive(rootfs, self.base / "busybox.tar", name=IMAGE)
        self("load", "-i", str(archive), check=True)
