"""Plan is what the caller works out from an OCI spec before it forks anything.

Every field of the spec the container process will act on is parsed and
checked here, in the caller, so a bad spec (an unknown capability, a
seccomp action strongbox lacks, a hostname without a UTS namespace) raises
:class:`ContainerError` from ``launch()`` without a process ever existing.
The forked process inherits the plan in its copy of memory: nothing is
serialized. Defaults are the runtime spec's, so partial dicts work.
"""

from __future__ import annotations

from strongbox.container import capabilities, rlimits, seccomp
from strongbox.container.devices import Device
from strongbox.container.errors import ContainerError
from strongbox.container.hooks import StartHooks
from strongbox.container.mountopts import root_propagation
from strongbox.container.mounts import MountEntry, parse_mounts
from strongbox.container.namespaces import Namespaces
from strongbox.container.userns import UserNamespace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: runc's umask when the spec gives none.
DEFAULT_UMASK = 0o022


class ProcessPlan:
    """The OCI ``process`` object (plus ``linux.seccomp``), ready to apply."""

    __slots__ = ("additional_gids", "args", "capabilities", "cwd", "env", "gid",
                 "no_new_privileges", "oom_score_adj", "rlimits", "seccomp", "uid", "umask")

    def __init__(self, process: dict[str, Any], spec: dict[str, Any],
                 last_cap: int = capabilities.LAST_CAP) -> None:
        args = process.get("args") or []
        if not args or not all(isinstance(a, str) for a in args):
            raise ContainerError("spec", "process.args must be a non-empty list of strings")
        self.args: list[str] = list(args)
        self.env: list[str] = list(process.get("env") or [])
        self.cwd: str = "/" + (process.get("cwd") or "/").lstrip("/")
        user = process.get("user") or {}
        self.uid: int = int(user.get("uid", 0))
        self.gid: int = int(user.get("gid", 0))
        self.additional_gids: list[int] = [int(g) for g in user.get("additionalGids") or []]
        umask = user.get("umask")
        self.umask: int = DEFAULT_UMASK if umask is None else int(umask)
        self.capabilities = capabilities.CapabilitySets.from_spec(process.get("capabilities"),
                                                                  last_cap)
        self.rlimits = rlimits.parse(process.get("rlimits") or [])
        self.no_new_privileges: bool = bool(process.get("noNewPrivileges", False))
        oom = process.get("oomScoreAdj")
        self.oom_score_adj: int | None = None if oom is None else int(oom)
        profile = (spec.get("linux") or {}).get("seccomp")
        self.seccomp = seccomp.translate(profile) if profile else None
        if self.seccomp is not None:
            seccomp.preload()

    def env_value(self, name: str) -> str | None:
        """The last ``name=`` entry of the container's environment (as execve would see it)."""
        value = None
        prefix = name + "="
        for entry in self.env:
            if entry.startswith(prefix):
                value = entry[len(prefix):]
        return value


class ContainerPlan:
    """Everything ``launch()`` does, parsed from the spec: namespaces, rootfs, settings."""

    __slots__ = ("devices", "domainname", "hostname", "masked_paths", "mounts", "namespaces",
                 "process", "propagation", "readonly_paths", "root_readonly", "setup_dev",
                 "start_hooks", "sysctl", "userns")

    def __init__(self, spec: dict[str, Any], last_cap: int = capabilities.LAST_CAP) -> None:
        linux = spec.get("linux") or {}
        self.namespaces = Namespaces.from_spec(linux.get("namespaces") or [])
        self.userns = UserNamespace.from_spec(linux, "user" in self.namespaces.new)
        self.mounts: list[MountEntry] = parse_mounts(spec.get("mounts") or [])
        self.devices = [Device.from_spec(d) for d in linux.get("devices") or []]
        self.masked_paths: list[str] = list(linux.get("maskedPaths") or [])
        self.readonly_paths: list[str] = list(linux.get("readonlyPaths") or [])
        self.root_readonly = bool((spec.get("root") or {}).get("readonly", False))
        self.propagation = root_propagation(linux.get("rootfsPropagation"))
        self.hostname: str | None = spec.get("hostname")
        self.domainname: str | None = spec.get("domainname")
        if (self.hostname or self.domainname) and not self.namespaces.has("uts"):
            raise ContainerError("hostname", "cannot set hostname or domainname without a "
                                 "private UTS namespace")
        self.sysctl: dict[str, str] = {str(k): str(v) for k, v in
                                       (linux.get("sysctl") or {}).items()}
        # runc leaves /dev alone when the spec bind-mounts it from somewhere.
        self.setup_dev = not any(m.destination == "/dev" and m.is_bind for m in self.mounts)
        self.process = ProcessPlan(spec.get("process") or {}, spec, last_cap)
        self.start_hooks = StartHooks(spec)
