"""Diagnostic boot: start a VM, report what the guest sees and how long it took.

This is ``strongbox guest boot`` and the boot benchmark. The timeline is in
seconds since QEMU was launched. The host measures launch and agent-ready
itself; the guest's own boot clock places "kernel running" (the moment the
guest clock started) and "/init started" on the same axis.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.guest.assets import resolve_boot_assets
from strongbox.hypervisor.base import VMSpec
from strongbox.hypervisor.qemu.accel import choose
from strongbox.sandbox.rundir import RunDir
from strongbox.sandbox.vm import GuestVM


def boot_and_report(config: Config, *, state_dir: Path, root: Path,
                    memory_mib: int | None = None, vcpus: int | None = None,
                    kernel: str | None = None, initrd: str | None = None,
                    timeout: float | None = None, accelerator: str | None = None) -> dict[str, Any]:
    qemu = config.hypervisor.qemu
    kernel_path, initrd_path = resolve_boot_assets(state_dir, kernel or qemu.kernel,
                                                   initrd or qemu.initrd)
    accel = choose(accelerator or qemu.accelerator)
    name = f"boot-{secrets.token_hex(4)}"
    run_dir = RunDir.create(root, name)
    try:
        spec = VMSpec(
            name=name, kernel=kernel_path, initrd=initrd_path,
            memory_mib=memory_mib or qemu.default_memory, vcpus=vcpus or qemu.default_vcpus,
            run_dir=run_dir.path, debug=qemu.enable_debug,
            kernel_params=tuple(qemu.kernel_params.split()),
        )
        report = asyncio.run(_boot(config, spec, accel.name,
                                   timeout or config.agent.dial_timeout, choose_accel=accel))
    finally:
        run_dir.remove()
    return report


async def _boot(config: Config, spec: VMSpec, accel_name: str, timeout: float,
                choose_accel: Any) -> dict[str, Any]:
    vm = GuestVM(config, spec, choose_accel)
    try:
        await vm.boot(timeout)
        asked = time.monotonic()
        info = await vm.call("guest_info")
        answered = time.monotonic()
        status = await vm.shutdown()
        stopped = time.monotonic()
    finally:
        await vm.destroy()
    t0 = vm.launched_at
    kernel_running = vm.qemu.running_at - t0
    # Early in boot the guest clock is unreliable under emulation, but once
    # the agent runs it keeps time: place "agent started" by its distance
    # from the guest_info answer, whose host time we know.
    answered_mid = (asked + answered) / 2 - t0
    agent_started = answered_mid - (info["uptime_s"] - info["agent_started_s"])
    report: dict[str, Any] = {k: v for k, v in info.items() if not k.endswith("_s")}
    report["guest_uptime_s"] = info["uptime_s"]
    report.update(
        accelerator=accel_name,
        name=spec.name,
        memory_mib=spec.memory_mib,
        qemu_started_s=round(vm.qemu.qmp_ready_at - t0, 4),
        kernel_running_s=round(max(0.0, kernel_running), 4),
        agent_started_s=round(max(kernel_running, agent_started), 4),
        agent_ready_s=round(vm.ready_at - t0, 4),
        stopped_s=round(stopped - t0, 4),
        qemu_exit_status=status,
    )
    return report
