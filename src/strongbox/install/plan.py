"""Plan turns ``strongbox install`` options into the changes to make, reading but never writing.

Every file is read, parsed, edited in memory and checked before the first
one is written, so an invalid file or a foreign ``strongbox`` entry stops
the whole install with all files untouched. The result is applied by
:func:`strongbox.install.apply` (or shown as diffs, for ``--dry-run``).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from strongbox.errors import ConfigError
from strongbox.install import RUNTIME_NAME, Change, containerd, docker, podman, read
from strongbox.install.target import ConfigTarget

TOOLS = ("containerd", "podman", "docker")
"""The engines strongbox registers with, in the order they are reported."""


@dataclass(frozen=True)
class Options:
    """What to (un)install where; ``None`` paths mean "find the running strongbox"."""

    containerd_config: Path = containerd.DEFAULT_PATH
    podman_config: Path = podman.DEFAULT_PATH
    docker_config: Path = docker.DEFAULT_PATH
    tools: tuple[str, ...] = TOOLS
    runtime_path: str | None = None
    shim_path: str | None = None
    uninstall: bool = False


@dataclass(frozen=True)
class Plan:
    """One change per selected file, and notes for the user (e.g. a shim not on PATH)."""

    changes: tuple[Change, ...]
    notes: tuple[str, ...] = field(default=())


def locate_runtime(argv0: str | None = None) -> str:
    """The strongbox executable's absolute path: the one running, else the one on PATH.

    ``argv0`` (default ``sys.argv[0]``) counts only if it is named
    strongbox: under ``python -m strongbox`` or pytest it is not the
    program an engine could run.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    if os.path.basename(argv0) == RUNTIME_NAME:
        found = argv0 if os.sep in argv0 else shutil.which(argv0)
        if found and os.path.isfile(found):
            return os.path.abspath(found)
    found = shutil.which(RUNTIME_NAME)
    if found:
        return os.path.abspath(found)
    # `python -m strongbox` from a virtualenv: its console script sits beside the interpreter.
    beside = os.path.join(os.path.dirname(sys.executable), RUNTIME_NAME)
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    raise ConfigError("cannot tell where the strongbox executable is: pass --runtime-path")


def default_shim(runtime_path: str) -> str:
    """The shim installed next to ``runtime_path`` (same ``bin`` directory)."""
    return os.path.join(os.path.dirname(runtime_path), containerd.SHIM_BINARY)


def make_plan(options: Options, search_path: str | None = None) -> Plan:
    """Read and edit every selected file in memory; raise before anything is written.

    ``search_path`` is the ``PATH`` the shim note judges by (default: ours).
    """
    unknown = sorted(set(options.tools) - set(TOOLS))
    if unknown:
        raise ConfigError(f"unknown engine {', '.join(unknown)}: choose from {', '.join(TOOLS)}")
    tools = set(options.tools)
    runtime = options.runtime_path
    if runtime:  # engines want an absolute path; a bare name is looked up on PATH
        found = runtime if os.sep in runtime else shutil.which(runtime, path=search_path)
        runtime = os.path.abspath(found) if found else runtime
    elif not options.uninstall and (tools & {"podman", "docker"}
                                    or ("containerd" in tools and not options.shim_path)):
        runtime = locate_runtime()
    targets: list[ConfigTarget] = []
    notes: list[str] = []
    for tool in TOOLS:
        if tool not in tools:
            continue
        if tool == "containerd":
            targets.append(containerd.ContainerdConfig(options.containerd_config))
            if not options.uninstall:
                shim = (os.path.abspath(options.shim_path) if options.shim_path
                        else default_shim(runtime or locate_runtime()))
                note = containerd.shim_note(shim, search_path,
                                            shutil.which("containerd", path=search_path))
                if note:
                    notes.append(note)
        elif tool == "podman":
            targets.append(podman.PodmanConfig(options.podman_config, runtime or RUNTIME_NAME))
        else:
            targets.append(docker.DockerConfig(options.docker_config, runtime or RUNTIME_NAME))
    if (runtime and not options.uninstall and os.sep in runtime and not os.path.exists(runtime)
            and tools & {"podman", "docker"}):
        notes.append(f"note: the runtime {runtime} does not exist (yet)")
    changes = []
    for target in targets:
        before = read(target.path)
        changes.append(target.uninstall(before) if options.uninstall else target.install(before))
    return Plan(tuple(changes), tuple(notes))
