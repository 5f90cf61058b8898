"""Hostcheck answers "can this host run strongbox, and how?" (``strongbox check``).

Each layer names what it needs: the hypervisor its binary, accelerator,
firmware and guest (:meth:`VMM.host_checks`); the host kernel its devices,
cgroups and system calls (:mod:`.facilities`); what strongbox prepares ahead of
containers, the guest build, the template and the warm pool (:mod:`.prepared`);
and the engines strongbox is registered with (:mod:`.engines`). Every finding
is ok, a warning (strongbox runs, slower or with less) or missing (it cannot
run containers here); the host passes when nothing is missing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.hostcheck import engines, facilities, prepared
from strongbox.hypervisor import open_vmm
from strongbox.hypervisor.base import MISSING, Finding

#: MiB an idle QEMU takes beside its guest's RAM (measured PSS: 52 MiB, TCG buffer included).
VMM_OVERHEAD_MIB = 64


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        """strongbox can run containers here: nothing is missing."""
        return all(f.status != MISSING for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.passed, "checks": [asdict(f) for f in self.findings]}


def check_host(config: Config, state_dir: Path, root: Path) -> Report:
    """Every finding, in the order ``strongbox check`` prints them."""
    vmm = open_vmm(config, state_dir)
    shape = vmm.shape()
    found = [
        *vmm.host_checks(),
        *prepared.guest_build(state_dir),
        facilities.tun(config),
        facilities.vhost_net(config),
        facilities.cgroups(),
        facilities.user_namespaces(),
        facilities.mount_api(),
        facilities.memory(shape.default_memory_mib + VMM_OVERHEAD_MIB),
        prepared.template(config, state_dir, root),
        prepared.pool(config),
        *engines.engines(),
    ]
    return Report(tuple(found))
