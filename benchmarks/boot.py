"""Boot benchmark: a raw QEMU boot against `strongbox guest boot` to agent-ready.

(a) raw: the same QEMU, machine, devices, kernel and kernel command line as
    strongbox uses, but the initrd's /init is busybox resetting the VM at
    once; measured from launching QEMU to QEMU's exit.
(b) strongbox: `strongbox guest boot --json`, its ``agent_ready_s`` (from
    launching QEMU to the agent's HELLO answer).

Runs alternate (a, b, a, b, ...) so drift on a busy machine hits both; the
report gives medians, the ratio b/a, the difference b-a, asset sizes and the
guest memory in use at agent-ready. Results are appended to RESULTS.md.

Usage: .venv/bin/python benchmarks/boot.py [--runs N] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from strongbox.config import Config  # noqa: E402
from strongbox.guest.assets import AssetStore  # noqa: E402
from strongbox.hypervisor.base import VMSpec  # noqa: E402
from strongbox.hypervisor.qemu.accel import choose  # noqa: E402
from strongbox.hypervisor.qemu.cmdline import build_argv  # noqa: E402
from strongbox.runtime.paths import DEFAULT_STATE_DIR  # noqa: E402
from tests.framework.initrd import REBOOT_INIT, busybox_initrd  # noqa: E402

RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def raw_argv(kernel: Path, initrd: Path, run_dir: Path) -> list[str]:
    """strongbox's QEMU command line, minus QMP and the agent channel; the console to a file."""
    qemu = Config().hypervisor.qemu
    spec = VMSpec(name="raw", kernel=kernel, initrd=initrd, memory_mib=qemu.default_memory,
                  vcpus=1, run_dir=run_dir)
    argv = build_argv(qemu.path, spec, choose(qemu.accelerator), qmp_fd=0, agent_fd=0,
                      console_fd=0, tcg_tb_size_mib=qemu.tcg_tb_size)
    out: list[str] = []
    skip = 0
    for i, arg in enumerate(argv):
        if skip:
            skip -= 1
            continue
        if arg == "-S":
            continue
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if arg == "-chardev" and nxt.startswith("socket,id=qmp"):
            skip = 3  # the chardev and its -mon
            continue
        if arg == "-chardev" and nxt.startswith("socket,id=agent"):
            out += ["-chardev", "null,id=agent"]
            skip = 1
            continue
        if arg == "-chardev" and nxt.startswith("socket,id=console"):
            out += ["-chardev", f"file,id=console,path={spec.console_log}"]
            skip = 1
            continue
        out.append(arg)
    return out


def time_raw(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)
    return time.monotonic() - started


def time_strongbox(root: Path) -> dict[str, float]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "strongbox", "--root", str(root), "guest",
                           "boot", "--json"], check=True, capture_output=True, text=True,
                          timeout=120)
    report = json.loads(proc.stdout)
    report["command_s"] = time.monotonic() - started
    return report


def emit(lines: list[str], write: bool) -> None:
    """Print a RESULTS.md section, and append it there when ``write``."""
    print("\n".join(lines))
    if write:
        with RESULTS.open("a") as f:
            f.write("\n".join(lines) + "\n")


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.splitlines()[0]
    return (f"{cpu}, {os.cpu_count()} CPUs, host kernel {platform.release()}, {qemu}, "
            f"accelerator {choose(Config().hypervisor.qemu.accelerator).name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    assets = AssetStore(DEFAULT_STATE_DIR).current()
    kernel, initrd = assets["kernel"].path, assets["initrd"].path
    raw, ready, started, used, command = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="sbx-bench-") as tmp:
        tmpdir = Path(tmp)
        baseline_initrd = busybox_initrd(tmpdir / "reboot.cpio", REBOOT_INIT)
        argv = raw_argv(kernel, baseline_initrd, tmpdir)
        for i in range(args.runs + 1):
            r = time_raw(argv)
            s = time_strongbox(tmpdir / "root")
            if i == 0:
                continue  # warm-up: page cache, first QEMU start
            raw.append(r)
            ready.append(s["agent_ready_s"])
            started.append(s["agent_started_s"])
            used.append(s["mem_used_kib"] / 1024)
            command.append(s["command_s"])
            print(f"run {i}: raw {r:.3f}s  agent-ready {s['agent_ready_s']:.3f}s  "
                  f"mem used {s['mem_used_kib'] / 1024:.1f} MiB", file=sys.stderr)
    med = statistics.median
    row = {
        "raw_boot_s": med(raw), "agent_ready_s": med(ready), "agent_started_s": med(started),
        "ratio": med(ready) / med(raw), "difference_s": med(ready) - med(raw),
        "guest_boot_command_s": med(command), "mem_used_mib": med(used),
        "vmlinux_mib": kernel.stat().st_size / 2**20, "initrd_mib": initrd.stat().st_size / 2**20,
    }
    print(json.dumps(row, indent=2))
    if not args.no_write:
        write_results(row, args.runs)
    return 0


def write_results(row: dict[str, float], runs: int) -> None:
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        f"\n## Boot — {stamp}\n",
        f"Machine: {machine()}. Median of {runs} alternating runs (after one warm-up).\n",
        "| measure | value | target |",
        "|---|---|---|",
        f"| (a) raw QEMU boot, busybox /init resets at once | {row['raw_boot_s']:.3f} s | |",
        f"| (b) `strongbox guest boot` to agent-ready | {row['agent_ready_s']:.3f} s | "
        f"≤ (a) + 0.5 s = {row['raw_boot_s'] + 0.5:.3f} s |",
        f"| ratio (b)/(a) | {row['ratio']:.2f} | |",
        f"| difference (b)-(a) | {row['difference_s']:.3f} s | ≤ 0.5 s |",
        f"| agent process started (after its imports) | {row['agent_started_s']:.3f} s | |",
        f"| whole `strongbox guest boot` command, incl. power-off | "
        f"{row['guest_boot_command_s']:.3f} s | |",
        f"| guest memory used at agent-ready (256 MiB VM) | {row['mem_used_mib']:.1f} MiB | "
        "≤ 25 MiB |",
        f"| vmlinux size | {row['vmlinux_mib']:.1f} MiB | |",
        f"| initrd size | {row['initrd_mib']:.1f} MiB | ≤ 16 MiB |",
    ]
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach section is one run of a script in "
                           "`benchmarks/`, with its date and machine.\n")
    with RESULTS.open("a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
