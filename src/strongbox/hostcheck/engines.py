"""Engines: which container engines on this host know strongbox as a runtime.

``strongbox install`` adds strongbox to containerd's, podman's and Docker's
configuration files; this reads those files back (the same parsers, nothing
written) and says, per engine, whether strongbox is registered there as install
would register it now. An engine that is not installed is fine; one installed
without strongbox is a warning: strongbox runs, but not from that engine.
"""

from __future__ import annotations

import shutil

from strongbox.errors import StrongboxError
from strongbox.hypervisor.base import OK, WARNING, Finding
from strongbox.install import containerd, docker, podman
from strongbox.install.files import read_bytes
from strongbox.install.plan import locate_runtime
from strongbox.install.target import ABSENT, ConfigTarget

#: Each engine: its program (is it installed?) and its configuration file.
ENGINES = (("containerd", "containerd"), ("podman", "podman"), ("docker", "dockerd"))


def _target(engine: str, runtime: str) -> ConfigTarget:
    if engine == "containerd":
        return containerd.ContainerdConfig(containerd.DEFAULT_PATH)
    if engine == "podman":
        return podman.PodmanConfig(podman.DEFAULT_PATH, runtime)
    return docker.DockerConfig(docker.DEFAULT_PATH, runtime)


def engines() -> list[Finding]:
    try:
        runtime = locate_runtime()
    except StrongboxError:
        runtime = "strongbox"
    found = []
    for engine, program in ENGINES:
        target = _target(engine, runtime)
        name = f"engine {engine}"
        if shutil.which(program) is None:
            found.append(Finding(name, OK, f"not installed ({program} not on PATH)"))
            continue
        try:
            entry = target.registered(read_bytes(target.path))
        except StrongboxError as exc:
            found.append(Finding(name, WARNING, str(exc)))
            continue
        if entry is ABSENT:
            found.append(Finding(name, WARNING, f"installed, strongbox not registered in "
                                 f"{target.path} (`strongbox install --only {engine}`)"))
        elif entry != target.expected():
            found.append(Finding(name, WARNING, f"registered in {target.path}, but not as "
                                 "`strongbox install` would now (another path?)"))
        else:
            found.append(Finding(name, OK, f"registered in {target.path}"))
    return found
