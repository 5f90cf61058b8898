"""Spec writes the config.json of an SDK sandbox: the image's defaults, the caller's sizes.

A sandbox is one container whose init only keeps it alive (``sh`` waiting on a
``sleep``; with ``timeout_s`` the sleep is the sandbox's lifetime, after which the
init exits and the runtime tears the VM down): the caller's work comes in later as
exec'd processes. It runs as root with Docker's default capabilities, since the VM,
not the container, is what confines code here, and package managers need them. The
VM's size comes from the limits, the way any container's does: ``memory_mib`` is the
container's memory limit (the VM adds its margin), ``vcpus`` its CPU quota.
"""

from __future__ import annotations

import re
from typing import Any

from strongbox.errors import ConfigError
from strongbox.oci.defaults import DEFAULT_PATH, default_spec

#: Docker's default capability set (moby's oci/caps/defaults.go).
CAPABILITIES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
ANNOTATION = "io.strongbox.sdk"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
CPU_PERIOD = 100_000


def check_env(env: object, what: str = "env") -> dict[str, str]:
    """``env`` as a dict of str to str, or one ConfigError naming the bad entry."""
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise ConfigError(f"{what}: expected a dict of names to strings, got "
                          f"{type(env).__name__}")
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise ConfigError(f"{what}: {name!r} is not a variable name")
        if not isinstance(value, str) or "\0" in value:
            raise ConfigError(f"{what}[{name!r}]: expected a string without NUL bytes")
    return dict(env)


def merged_env(base: list[str], extra: dict[str, str]) -> list[str]:
    """``base`` (NAME=value lines) with ``extra`` set over it."""
    env = dict(line.partition("=")[::2] for line in base)
    env.update(extra)
    return [f"{name}={value}" for name, value in env.items()]


def image_env(image: dict[str, Any]) -> list[str]:
    env = [e for e in image.get("Env") or [] if isinstance(e, str) and "=" in e]
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH}")
    return env


def keepalive(timeout_s: float | None) -> list[str]:
    """The init: waits forever, or ``timeout_s`` seconds; a SIGTERM ends it at once."""
    wait = f"sleep {timeout_s:g} & wait $!" if timeout_s else \
        "while :; do sleep 3600 & wait $!; done"
    return ["/bin/sh", "-c", f"trap 'exit 0' TERM; {wait}"]


def sandbox_spec(image: dict[str, Any], *, rootfs: str, hostname: str,
                 memory_mib: int | None, vcpus: int | None, env: dict[str, str],
                 timeout_s: float | None, netns: str | None, annotations: dict[str, str]
                 ) -> dict[str, Any]:
    """The config.json of one sandbox from the image's run defaults (``image``)."""
    spec = default_spec()
    process = spec["process"]
    process.update(terminal=False, args=keepalive(timeout_s),
                   env=merged_env(image_env(image), env),
                   cwd=str(image.get("WorkingDir") or "/"))
    process["capabilities"] = {kind: list(CAPABILITIES) for kind in
                               ("bounding", "effective", "permitted")}
    process.pop("rlimits", None)  # the guest kernel's defaults: no NOFILE of 1024
    spec["root"] = {"path": rootfs, "readonly": False}
    spec["hostname"] = hostname
    linux = spec["linux"]
    resources: dict[str, Any] = {"devices": linux["resources"]["devices"]}
    if memory_mib:  # else the VM's default size, which a template or the pool may have
        resources["memory"] = {"limit": memory_mib << 20}
    if vcpus:
        resources["cpu"] = {"quota": vcpus * CPU_PERIOD, "period": CPU_PERIOD}
    linux["resources"] = resources
    if netns:
        for ns in linux["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = netns
    spec["annotations"] = {ANNOTATION: "1", **annotations}
    return spec


def exec_process(spec: dict[str, Any], args: list[str], *, env: dict[str, str],
                 cwd: str | None) -> dict[str, Any]:
    """An exec's OCI process: the sandbox's user, environment and capabilities."""
    base = spec["process"]
    return {"terminal": False, "args": args, "env": merged_env(base["env"], env),
            "cwd": cwd or base["cwd"], "user": base["user"],
            "capabilities": base["capabilities"], "noNewPrivileges": True}
