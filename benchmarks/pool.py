"""Warm-pool benchmark: pooled starts against runc, template clones and cold boots.

Same session, runc as the baseline, medians of alternating rows (after a warm-up row):

1. ``run true``: runc, strongbox cold, template clone, warm pool (the pool refills
   between rows, untimed: each pooled row takes a VM that is free);
2. ``create`` + ``start`` + exit + ``delete``: runc and the pool;
3. ``strongbox state`` against ``runc state`` (a created container);
4. 100 containers at once from a pool of 100 (failures, wall time, how many got a
   pooled VM), and the time the pool took to fill;
5. PSS per idle pooled sandbox: the monitor, QEMU (its TCG buffer apart) and the
   keeper (the pool's per-VM process) apart;
6. where a pooled ``run true`` spends its time (the ``--debug`` timeline).

Appends to RESULTS.md and writes ``benchmarks/starts.png``.

Usage: .venv/bin/python benchmarks/pool.py [--runs N] [--many N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.boot import RESULTS, machine  # noqa: E402
from benchmarks.cli import lifecycle, timed  # noqa: E402
from benchmarks.density import pss_kib, succeeds, tcg_buffer_kib  # noqa: E402
from tests.framework.bundle import make_bundle  # noqa: E402
from tests.framework.pool import WarmPool, keepers  # noqa: E402
from tests.framework.procs import pids_with_cmdline, wait_until  # noqa: E402

STRONGBOX = [sys.executable, "-m", "strongbox"]
PHASE = re.compile(r"phase (.+?) (\d+\.\d+)s")


def run_true(rt: list[str], bundle: Path, cid: str) -> float:
    return timed([*rt, "run", "--bundle", str(bundle), cid])


def wait_free(pool: WarmPool, want: int, timeout: float = 300) -> None:
    if not wait_until(lambda: pool.status()["free"] >= want, timeout, 0.2):
        sys.exit(f"the pool did not refill to {want}")


def starts(args: argparse.Namespace, base: Path, pool: WarmPool, bundle: Path, runc: str
           ) -> dict[str, float]:
    rts = {"runc": [runc, "--root", str(base / "runc")],
           "cold": [*STRONGBOX, "--root", str(base / "cold")],
           "template": [*STRONGBOX, "--config", str(base / "tpl.toml"), "--root",
                        str(base / "tpl")],
           "pool": [*STRONGBOX, "--config", str(pool.config), "--root", str(base / "pool")]}
    (base / "tpl.toml").write_text(pool.config.read_text().replace(
        f"vm_cache_number = {pool.size}", "vm_cache_number = 0"))
    rows: dict[str, list[float]] = {}
    for i in range(args.runs + 1):
        row: dict[str, float] = {}
        for name, rt in rts.items():
            if name == "pool":
                wait_free(pool, 1)
            row[f"run true: {name}"] = run_true(rt, bundle, f"r{name}{i}")
        wait_free(pool, 1)
        row["lifecycle: runc"] = lifecycle(rts["runc"], bundle, f"lr{i}")
        row["lifecycle: pool"] = lifecycle(rts["pool"], bundle, f"lp{i}")
        subprocess.run([*rts["runc"], "create", "--bundle", str(bundle), f"sr{i}"],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        wait_free(pool, 1)
        subprocess.run([*rts["pool"], "create", "--bundle", str(bundle), f"sp{i}"],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        row["state: runc"] = timed([*rts["runc"], "state", f"sr{i}"])
        row["state: strongbox"] = timed([*rts["pool"], "state", f"sp{i}"])
        subprocess.run([*rts["runc"], "delete", "--force", f"sr{i}"], check=True)
        subprocess.run([*rts["pool"], "delete", "--force", f"sp{i}"], check=True)
        print(f"row {i}: " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()),
              file=sys.stderr)
        if i:
            for key, value in row.items():
                rows.setdefault(key, []).append(value)
    return {k: statistics.median(v) for k, v in rows.items()}


def timeline(pool: WarmPool, base: Path, bundle: Path) -> dict[str, float]:
    wait_free(pool, 1)
    result = subprocess.run([*STRONGBOX, "--config", str(pool.config), "--root",
                             str(base / "pool"), "--debug", "run", "--bundle", str(bundle),
                             "tl"], capture_output=True, text=True, check=True)
    return {m.group(1): float(m.group(2)) for m in PHASE.finditer(result.stderr)}


def qemu_of(vm: str) -> int:
    return pids_with_cmdline(f"strongbox-{vm},", "qemu-system")[0]


def idle_memory(pool: WarmPool, base: Path, count: int) -> dict[str, float]:
    rt = [*STRONGBOX, "--config", str(pool.config), "--root", str(base / "mem")]
    sleep = make_bundle(base / "sleep", ["sleep", "100000"])
    wait_free(pool, count)
    ids = [f"m{i}" for i in range(count)]
    try:
        for cid in ids:
            if not succeeds([*rt, "run", "--detach", "--bundle", str(sleep), cid], cid):
                sys.exit(f"{cid} did not start")
        time.sleep(3)
        vms = pool.status()["in_use_vms"]
        monitor = sum(pss_kib(int(json.loads(subprocess.run(
            [*rt, "state", c], capture_output=True, check=True).stdout)["pid"])) for c in ids)
        qemu = sum(pss_kib(qemu_of(vm)) for vm in vms)
        tcg = sum(tcg_buffer_kib(qemu_of(vm)) for vm in vms)
        keeper = sum(pss_kib(p) for p in keepers(pool.root))  # the free ones' too: per VM
        per = 1024 * count
        return {"monitor_mib": monitor / per, "qemu_mib": qemu / per,
                "tcg_buffer_mib": tcg / per,
                "keeper_mib": keeper / 1024 / max(1, len(keepers(pool.root))),
                "sandboxes": count}
    finally:
        for cid in ids:
            subprocess.run([*rt, "delete", "--force", cid], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def hundred(base: Path, bundle: Path, count: int, extra: str) -> dict[str, Any]:
    big = WarmPool(base / "big", size=count, extra=extra)
    started = time.monotonic()
    big.start()
    filled = time.monotonic() - started
    rt = [*STRONGBOX, "--config", str(big.config), "--root", str(base / "many")]
    before = big.status()
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=count) as workers:
            ok = list(workers.map(lambda i: succeeds(
                [*rt, "run", "--bundle", str(bundle), f"p{i}"], f"p{i}"), range(count)))
        wall = time.monotonic() - started
        after = big.status()
    finally:
        big.stop()
        wait_until(lambda: not keepers(big.root), 60)
    return {"count": count, "seconds": wall, "failures": ok.count(False),
            "pooled": (after["claims"] - after["misses"]) - (before["claims"]
                                                              - before["misses"]),
            "fill_s": filled}


def write(med: dict[str, float], mem: dict[str, float], many: dict[str, Any],
          phases: dict[str, float], runs: int) -> None:
    def ratio(key: str, base: str) -> str:
        return f"{med[key] / med[base]:.1f}x"

    lines = [
        f"\n## Warm VM pool (issue 14, item 1) — {time.strftime('%Y-%m-%d %H:%M')}\n",
        f"Machine: {machine()}. Medians of {runs} alternating rows after a warm-up; runc "
        "in the same rows; the pool (2 VMs) refilled between rows, untimed. Chart: "
        "`benchmarks/starts.png`. runsc is not installed here: no gVisor column.\n",
        "| measure | runc | strongbox | ratio | target |", "|---|---|---|---|---|",
    ]
    for mode in ("cold", "template", "pool"):
        target = "≤ 3x" if mode == "pool" else ""
        lines.append(f"| `run true`, {mode} | {med['run true: runc']:.3f} s | "
                     f"{med[f'run true: {mode}']:.3f} s | "
                     f"{ratio(f'run true: {mode}', 'run true: runc')} | {target} |")
    lines += [
        f"| `create`+`start`+`delete`, pool | {med['lifecycle: runc']:.3f} s | "
        f"{med['lifecycle: pool']:.3f} s | {ratio('lifecycle: pool', 'lifecycle: runc')} | |",
        f"| `state` | {med['state: runc'] * 1000:.0f} ms | "
        f"{med['state: strongbox'] * 1000:.0f} ms | {ratio('state: strongbox', 'state: runc')}"
        " | ≤ 25 ms |",
        f"\n{many['count']} `run true` at once from a pool of {many['count']} (filled in "
        f"{many['fill_s']:.0f} s): {many['seconds']:.1f} s wall, {many['failures']} failures, "
        f"{many['pooled']} got a pooled VM (target: 0 failures within 10 s).\n",
        f"Idle pooled sandbox ({mem['sandboxes']:.0f} of them), PSS each: monitor "
        f"{mem['monitor_mib']:.1f} MiB (target ≤ 8 MiB), QEMU {mem['qemu_mib']:.1f} MiB "
        f"(of it the TCG buffer {mem['tcg_buffer_mib']:.1f} MiB), keeper "
        f"{mem['keeper_mib']:.1f} MiB (new with the pool: the process that owns QEMU).\n",
        "Where a pooled `run true` spends its time (one `--debug` run): " + ", ".join(
            f"{name} {secs * 1000:.0f} ms" for name, secs in phases.items()) + ".",
    ]
    with RESULTS.open("a") as f:
        f.write("\n".join(lines) + "\n")


def chart(med: dict[str, float], many: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["runc", "cold", "template", "pool"]
    values = [med[f"run true: {n}"] for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, values, color=["#777", "#c44", "#d93", "#3a3"])
    left.set_ylabel("seconds (median)")
    left.set_title("`run true` (TCG, 2 cores)")
    for x, v in enumerate(values):
        left.text(x, v, f"{v:.2f}s", ha="center", va="bottom")
    right.bar(["wall", "target"], [many["seconds"], 10.0], color=["#3a3", "#aaa"])
    right.set_title(f"{many['count']} at once from a pool ({many['failures']} failed)")
    right.set_ylabel("seconds")
    fig.tight_layout()
    fig.savefig(ROOT / "benchmarks" / "starts.png", dpi=100)


def _cached_bytecode(base: Path) -> None:
    """Every strongbox command of the benchmark with compiled bytecode cached, as an
    installed package has it (this machine sets PYTHONDONTWRITEBYTECODE=1, and without a
    cache each command recompiles what it imports)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(base / "pycache")


def _partial(stage: str, value: object) -> None:
    """Each stage's result as soon as it is known: a later stage's failure loses nothing."""
    print(json.dumps({stage: value}), file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--many", type=int, default=100)
    parser.add_argument("--memory", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--only-many", action="store_true",
                        help="only the concurrent starts (stage 4), printed, not written")
    args = parser.parse_args()
    runc = shutil.which("runc")
    if runc is None:
        sys.exit("runc is not installed")
    with tempfile.TemporaryDirectory(prefix="sbx-bench-pool-", dir="/dev/shm") as tmp:
        base = Path(tmp)
        _cached_bytecode(base)
        bundle = make_bundle(base / "true", ["true"])
        if args.only_many:
            print(json.dumps({"many": hundred(base, bundle, args.many, "")}))
            return 0
        with WarmPool(base / "p", size=max(2, args.memory)) as pool:
            med = starts(args, base, pool, bundle, runc)
            _partial("medians", med)
            phases = timeline(pool, base, bundle)
            _partial("phases", phases)
            mem = idle_memory(pool, base, args.memory)
            _partial("memory", mem)
        many = hundred(base, bundle, args.many, "")
    print(json.dumps({"medians": med, "memory": mem, "many": many, "phases": phases},
                     indent=2))
    if not args.no_write:
        write(med, mem, many, phases, args.runs)
        chart(med, many)
    return 0


if __name__ == "__main__":
    sys.exit(main())
