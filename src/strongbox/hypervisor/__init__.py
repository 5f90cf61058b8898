"""hypervisor starts, drives and stops the VMM that runs one sandbox's guest.

``base`` defines what every VMM driver offers (:class:`~.base.VMM`,
:class:`~.base.VM`); ``qemu`` is the only driver; ``jailer`` confines a VMM
process. The sandbox layer gets its VMM from :func:`open_vmm` and never
imports a driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from strongbox.config import Config
    from strongbox.hypervisor.base import VMM


def open_vmm(config: Config, state_dir: Path) -> VMM:
    """The VMM the configuration names (``[hypervisor.qemu]``: QEMU)."""
    from strongbox.hypervisor.qemu.vmm import QemuVMM

    return QemuVMM(config.hypervisor.qemu, state_dir)


def idle_jails(older_than: float = 60.0) -> list[str]:
    """VM names whose jail left host state behind with no process in it (a crash's
    leftovers; :func:`remove_leftovers` removes them)."""
    from strongbox.hypervisor.jailer.cgroups import idle_jails as idle

    return idle(older_than)


def vmm_processes(run_dirs: list[Path]) -> dict[Path, int]:
    """The running VMM process of each of these VM run directories, with its pid as the
    host sees it (an owner in a pid namespace of its own knows another number)."""
    from strongbox.hypervisor.qemu.processes import of_run_dirs

    return of_run_dirs(run_dirs)


def orphan_vmms() -> dict[int, Path]:
    """VMM processes whose run directory is gone (their owner too), by host pid."""
    from strongbox.hypervisor.qemu.processes import orphans

    return orphans()


def remove_leftovers(name: str, wait: float = 0.0) -> None:
    """After a crash: remove what any driver may have left outside a VM's run directory
    for the VM named ``name`` (a jailed QEMU's cgroups); waits up to ``wait`` s for it
    to empty."""
    from strongbox.hypervisor.jailer.cgroups import remove_leftovers as jail_leftovers

    jail_leftovers(name, wait=wait)
