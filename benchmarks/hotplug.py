"""Hotplug benchmark: what adding and removing a device costs a running q35 sandbox.

Two devices, each against a baseline from the same run that needs no hotplug:

* a pod member whose rootfs is a block device (an ext4 image on a loop device): the
  disk is taken from the host and hot-plugged into a root port on ``add``, unplugged
  and mounted back on ``remove``; the baseline is the same member over 9p (its
  directory bound into the running VM's export);
* an interface the engine adds to the sandbox's namespace while it runs: a NIC is
  hot-plugged for it and configured (``add``), and unplugged once it is deleted
  (``remove``); the baseline is a microvm binding the interface to a free NIC slot.

Each removal is timed twice: with the guest told to power the slot off (strongbox's
way, ``eject_slot``) and without (the guest's hotplug driver then waits out its
five-second attention-button delay), which is where a removal's time goes. Timings
are the sandbox's own calls (``add_container``/``remove_container``, one network
look and the unplug it starts), medians over alternating runs after a warm-up.

Usage: .venv/bin/python benchmarks/hotplug.py [--runs N] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.boot import emit, machine  # noqa: E402
from strongbox.config import parse_config  # noqa: E402
from strongbox.oci.spec import load_bundle  # noqa: E402
from strongbox.runtime.paths import DEFAULT_STATE_DIR  # noqa: E402
from strongbox.sandbox.plan import ContainerRequest  # noqa: E402
from strongbox.sandbox.sandbox import Sandbox  # noqa: E402
from strongbox.sandbox.vm import GuestVM  # noqa: E402
from tests.framework.blockimage import LoopImage  # noqa: E402
from tests.framework.bundle import make_bundle, read_spec, write_spec  # noqa: E402
from tests.framework.networld import engine_world, ip  # noqa: E402


def _config(machine_type: str) -> dict[str, Any]:
    qemu: dict[str, Any] = {"machine_type": machine_type, "disable_block_device_use": False}
    if machine_type == "q35":
        qemu["pcie_root_port"] = 2
    # no namespace watch: each look is the benchmark's own
    slots = 1 if machine_type == "q35" else 2  # microvm: a free slot for the new one
    return {"hypervisor": {"qemu": qemu},
            "network": {"nic_slots": slots, "enable_netmon": False}}


def _request(cid: str, bundle: Path, *, member: bool) -> ContainerRequest:
    spec, rootfs = load_bundle(str(bundle))
    return ContainerRequest(id=cid, spec=spec, rootfs=rootfs, stdin=False, pod_member=member)


def _in_netns(bundle: Path, netns: str) -> Path:
    spec = read_spec(bundle)
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"]
                                   if n["type"] != "network"] + [{"type": "network",
                                                                  "path": netns}]
    write_spec(bundle, spec)
    return bundle


async def _timed(work: Awaitable[Any]) -> float:
    started = time.monotonic()
    await work
    return time.monotonic() - started


class Eject:
    """Turns the guest's eject off (``on = False``) for the runs that time the wait."""

    def __init__(self) -> None:
        self.on = True
        self._real: Callable[[GuestVM, str], Awaitable[None]] = GuestVM.eject

        async def eject(vm: GuestVM, port: str) -> None:
            if self.on:
                await self._real(vm, port)

        GuestVM.eject = eject  # type: ignore[method-assign,assignment]


async def disks(tmp: Path, runs: int, eject: Eject) -> dict[str, list[float]]:
    """Member add/remove on q35: block rootfs (with and without the eject) and 9p."""
    out: dict[str, list[float]] = {k: [] for k in (
        "disk add", "disk remove", "disk remove (no eject)", "9p add", "9p remove")}
    first = make_bundle(tmp / "first", ["sleep", "1000"], root__readonly=False)
    nine = make_bundle(tmp / "ninep", ["true"], root__readonly=False)
    sandbox = Sandbox(parse_config(_config("q35")), sandbox_id=f"bhp-{os.getpid()}",
                      root=tmp / "root", state_dir=DEFAULT_STATE_DIR)
    with LoopImage(tmp / "img", tmp / "img" / "bundle" / "rootfs") as image:
        block = make_bundle(image.mount.parent, ["true"], rootfs=image.mount,
                            root__readonly=False)
        try:
            await sandbox.launch(_request("pause", first, member=False))
            await sandbox.start_container("pause")
            for i in range(runs + 1):
                for with_eject in (True, False):
                    eject.on = with_eject
                    add = await _timed(sandbox.add_container(_request("m", block, member=True)))
                    remove = await _timed(sandbox.remove_container("m"))
                    if i:
                        if with_eject:
                            out["disk add"].append(add)
                        out["disk remove" + ("" if with_eject else " (no eject)")].append(remove)
                eject.on = True
                add = await _timed(sandbox.add_container(_request("n", nine, member=True)))
                remove = await _timed(sandbox.remove_container("n"))
                if i:
                    out["9p add"].append(add)
                    out["9p remove"].append(remove)
                print(f"disks run {i}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in out.items()
                                                     if v), file=sys.stderr)
        finally:
            try:
                await sandbox.stop()
            finally:
                await sandbox.destroy()
    return out


async def nics(tmp: Path, runs: int, eject: Eject, machine_type: str) -> dict[str, list[float]]:
    """An interface added to, then deleted from, a running sandbox's namespace: one look
    each (and, on q35, the unplug that look starts)."""
    out: dict[str, list[float]] = {"add": [], "remove": [], "remove (no eject)": []}
    with engine_world() as world:
        first = _in_netns(make_bundle(tmp / f"nic-{machine_type}", ["sleep", "1000"]),
                          world.netns)
        sandbox = Sandbox(parse_config(_config(machine_type)),
                          sandbox_id=f"bnic-{machine_type[:2]}-{os.getpid()}",
                          root=tmp / "root", state_dir=DEFAULT_STATE_DIR)
        try:
            await sandbox.launch(_request("pause", first, member=False))
            await sandbox.start_container("pause")
            assert sandbox.booted is not None
            netsync = sandbox.booted.netsync
            for i in range(runs + 1):
                for with_eject in (True, False) if machine_type == "q35" else (True,):
                    eject.on = with_eject
                    ip("link", "add", "sbbhp0", "type", "veth", "peer", "name", "sbbhp1")
                    ip("link", "set", "sbbhp1", "netns", world.name)
                    add = await _timed(netsync.sync())
                    subprocess.run(["ip", "link", "del", "sbbhp0"], check=True)

                    async def removed() -> None:
                        await netsync.sync()
                        await netsync.settled()

                    remove = await _timed(removed())
                    if i:
                        if with_eject:
                            out["add"].append(add)
                        out["remove" + ("" if with_eject else " (no eject)")].append(remove)
                print(f"nics ({machine_type}) run {i}: " + ", ".join(
                    f"{k} {v[-1]:.3f}s" for k, v in out.items() if v), file=sys.stderr)
        finally:
            subprocess.run(["ip", "link", "del", "sbbhp0"], capture_output=True)
            try:
                await sandbox.stop()
            finally:
                await sandbox.destroy()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    eject = Eject()
    med = statistics.median
    with tempfile.TemporaryDirectory(prefix="sbx-bench-hp-") as tmp:
        disk = asyncio.run(disks(Path(tmp) / "d", args.runs, eject))
        q35 = asyncio.run(nics(Path(tmp) / "q", args.runs, eject, "q35"))
        slot = asyncio.run(nics(Path(tmp) / "m", args.runs, eject, "microvm"))
    d = {k: med(v) for k, v in disk.items()}
    q = {k: med(v) for k, v in q35.items()}
    m = {k: med(v) for k, v in slot.items() if v}
    faster_disk = d["disk remove (no eject)"] / d["disk remove"]
    faster_nic = q["remove (no eject)"] / q["remove"]
    emit([
        f"\n## Hotplug on q35 (issue 15) — {time.strftime('%Y-%m-%d %H:%M')}\n",
        f"Machine: {machine()}. The sandbox's own calls, timed in process; medians of "
        f"{args.runs} alternating runs after a warm-up. Baselines from the same run: a 9p "
        "member (no device to plug) and a microvm's free NIC slot (no NIC to plug).\n",
        "| device | add | remove (guest ejects) | remove (pciehp's wait) | baseline add / "
        "remove |",
        "|---|---|---|---|---|",
        f"| pod member, block-device rootfs | {d['disk add']:.3f} s | {d['disk remove']:.3f} s "
        f"| {d['disk remove (no eject)']:.3f} s | 9p member {d['9p add']:.3f} s / "
        f"{d['9p remove']:.3f} s |",
        f"| interface added while running | {q['add']:.3f} s | {q['remove']:.3f} s | "
        f"{q['remove (no eject)']:.3f} s | microvm slot {m['add']:.3f} s / "
        f"{m['remove']:.3f} s |",
        f"\nThe guest's eject makes a disk's removal {faster_disk:.1f}x and a NIC's "
        f"{faster_nic:.1f}x faster: without it the guest's hotplug driver waits five "
        "seconds after QEMU presses the slot's attention button. What is left of a removal "
        "is about one second the guest's driver waits after powering the slot off (the "
        "PCIe power-off settle time) before it turns the power indicator off, the write "
        "QEMU takes as its acknowledgement; the agent answers the eject at once and keeps "
        "serving meanwhile. An add costs the QMP commands (fd passing, blockdev-add or "
        "netdev_add, device_add) and the guest's probe of the new function, which the "
        "agent waits for before it mounts or configures it.",
    ], not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
