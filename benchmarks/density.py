"""Density benchmark: cold vs templated starts, many containers at once, memory per sandbox.

Same session, runc as the baseline, medians:

1. one `run` of busybox `true`: runc, strongbox cold, strongbox templated;
2. `create` + `delete` (no start): the same three;
3. 100 containers one after another, and 100 at once (the same three):
   wall time and failures;
4. host memory per idle running sandbox (PSS of QEMU + its monitor, from
   /proc/PID/smaps_rollup; for runc the container's process) at 1, 10 and
   50 sandboxes, and the guest's own memory use;
and writes RESULTS.md plus a PNG chart.

Usage: .venv/bin/python benchmarks/density.py [--runs N] [--many N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
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
from tests.framework.bundle import make_bundle  # noqa: E402
from tests.framework.procs import qemu_pids  # noqa: E402

STRONGBOX = [sys.executable, "-m", "strongbox"]
QUIET = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
         "stderr": subprocess.DEVNULL}


class Runtimes:
    def __init__(self, base: Path) -> None:
        self.base = base
        runc = shutil.which("runc")
        if runc is None:
            sys.exit("runc is not installed")
        self.runc = [runc, "--root", str(base / "runc")]
        self.cold = [*STRONGBOX, "--root", str(base / "sb-cold")]
        self.config = base / "config.toml"
        self.config.write_text(f'[factory]\nenable_template = true\n'
                               f'template_path = "{base / "template"}"\n')
        self.warm = [*STRONGBOX, "--config", str(self.config), "--root",
                     str(base / "sb-warm")]
        self.true = make_bundle(base / "true", ["true"])
        self.sleep = make_bundle(base / "sleep", ["sleep", "100000"])

    def named(self) -> dict[str, list[str]]:
        return {"runc": self.runc, "cold": self.cold, "template": self.warm}


#: Where each started container's stderr goes, so that a failure says why.
LOGS = Path(tempfile.gettempdir()) / "strongbox-density-logs"


def succeeds(argv: list[str], cid: str) -> bool:
    """Run one start command; on failure print its stderr's last lines (and keep the file)."""
    LOGS.mkdir(exist_ok=True)
    log_file = LOGS / f"{cid}.err"
    with log_file.open("w") as err:  # not a pipe: a detached monitor keeps it open
        ok = subprocess.run(argv, timeout=600, check=False, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err).returncode == 0
    if ok:
        log_file.unlink()
    else:
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
        print(f"FAILED {cid}: " + " | ".join(tail), file=sys.stderr)
    return ok


def one_run(rt: list[str], bundle: Path, cid: str) -> tuple[float, bool]:
    started = time.monotonic()
    ok = succeeds([*rt, "run", "--bundle", str(bundle), cid], cid)
    return time.monotonic() - started, ok


def create_delete(rt: list[str], bundle: Path, cid: str) -> float:
    started = time.monotonic()
    subprocess.run([*rt, "create", "--bundle", str(bundle), cid], check=True, **QUIET)
    subprocess.run([*rt, "delete", "--force", cid], check=True, **QUIET)
    return time.monotonic() - started


def many(rt: list[str], bundle: Path, prefix: str, count: int, parallel: bool
         ) -> dict[str, float]:
    started = time.monotonic()
    ids = [f"{prefix}{i}" for i in range(count)]
    if parallel:
        with ThreadPoolExecutor(max_workers=count) as pool:
            results = list(pool.map(lambda c: one_run(rt, bundle, c), ids))
    else:
        results = [one_run(rt, bundle, c) for c in ids]
    return {"seconds": time.monotonic() - started,
            "failures": sum(1 for _, ok in results if not ok)}


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def tcg_buffer_kib(pid: int) -> int:
    """PSS of QEMU's TCG translation buffer: its one anonymous rwx mapping."""
    total, in_buffer = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:
            in_buffer = fields[1] == "rwxp" and len(fields) == 5
        elif in_buffer and fields[0] == "Pss:":
            total += int(fields[1])
    return total


def memory(rt: list[str], root: Path, bundle: Path, count: int, prefix: str, *,
           vm: bool = True) -> dict[str, float]:
    """Start ``count`` idle containers; PSS per sandbox of QEMU + monitor, split up.

    With ``vm=False`` (runc) the "monitor" is the container's own process.
    """
    ids = [f"{prefix}{i}" for i in range(count)]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            started = list(pool.map(lambda c: succeeds(
                [*rt, "run", "--detach", "--bundle", str(bundle), c], c), ids))
        running = [cid for cid, ok in zip(ids, started, strict=True) if ok]
        time.sleep(3)  # let them settle
        monitors = qemus = tcg = 0
        for cid in running:
            state = json.loads(subprocess.run([*rt, "state", cid], capture_output=True,
                                              check=True).stdout)
            monitors += pss_kib(int(state["pid"]))
        for pid in qemu_pids(str(root)):
            qemus += pss_kib(pid)
            tcg += tcg_buffer_kib(pid)
        guest = subprocess.run([*rt, "exec", running[0], "grep", "-E",
                                "MemTotal|MemAvailable", "/proc/meminfo"],
                               capture_output=True, text=True).stdout.split() if vm else []
    finally:  # never leave VMs running behind a removed state directory
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda c: subprocess.run([*rt, "delete", "--force", c], **QUIET),
                          ids))
    used = (int(guest[1]) - int(guest[4])) / 1024 if len(guest) >= 5 else 0.0
    per = len(running) * 1024
    return {"pss_mib_per_sandbox": (monitors + qemus) / per, "monitor_mib": monitors / per,
            "qemu_mib": qemus / per, "tcg_buffer_mib": tcg / per, "guest_used_mib": used,
            "failures": count - len(running)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--many", type=int, default=100)
    parser.add_argument("--densities", default="1,10,50")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sbx-density-", dir="/dev/shm") as tmp:
        rt = Runtimes(Path(tmp))
        subprocess.run([*rt.warm, "factory", "init"], check=True, **QUIET)
        single: dict[str, list[float]] = {k: [] for k in rt.named()}
        lifecycle: dict[str, list[float]] = {k: [] for k in rt.named()}
        for i in range(args.runs + 1):
            for name, cmd in rt.named().items():
                seconds, ok = one_run(cmd, rt.true, f"one-{name}-{i}")
                assert ok, f"{name} run failed"
                life = create_delete(cmd, rt.sleep, f"cd-{name}-{i}")
                if i:
                    single[name].append(seconds)
                    lifecycle[name].append(life)
        out["run_true_s"] = {k: statistics.median(v) for k, v in single.items()}
        out["create_delete_s"] = {k: statistics.median(v) for k, v in lifecycle.items()}
        print(json.dumps(out, indent=2), file=sys.stderr)
        out["many"] = {}
        for name, cmd in (("runc", rt.runc), ("cold", rt.cold), ("template", rt.warm)):
            out["many"][name] = {
                "serial": many(cmd, rt.true, f"ser-{name}-", args.many, parallel=False)}
            if name != "cold":  # 100 cold VMs at once want ~19 GiB here: not on this host
                out["many"][name]["concurrent"] = many(cmd, rt.true, f"con-{name}-",
                                                       args.many, parallel=True)
            print(name, out["many"][name], file=sys.stderr)
        out["memory"] = {}
        for name, cmd, root in (("runc", rt.runc, Path(tmp) / "runc"),
                                ("cold", rt.cold, Path(tmp) / "sb-cold"),
                                ("template", rt.warm, Path(tmp) / "sb-warm")):
            for n in (int(x) for x in args.densities.split(",")):
                out["memory"][f"{name}@{n}"] = memory(cmd, root, rt.sleep, n,
                                                      f"m{name}{n}-", vm=name != "runc")
                print(name, n, out["memory"][f"{name}@{n}"], file=sys.stderr)
    print(json.dumps(out, indent=2))
    if not args.no_write:
        write(out, args)
    return 0


def write(out: dict[str, Any], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stamp = time.strftime("%Y-%m-%d %H:%M")
    run, life = out["run_true_s"], out["create_delete_s"]
    lines = [
        f"\n## Density and templates — {stamp}\n",
        f"Machine: {machine()}. Medians of {args.runs} runs after a warm-up; runc measured in "
        "the same session. Chart: `benchmarks/density.png`.\n",
        "| measure | runc | strongbox cold | strongbox templated | templated / runc | target |",
        "|---|---|---|---|---|---|",
        f"| `run` busybox `true` | {run['runc']:.3f} s | {run['cold']:.3f} s | "
        f"{run['template']:.3f} s | {run['template'] / run['runc']:.1f}x | ≤ 3x |",
        f"| `create` + `delete` | {life['runc']:.3f} s | {life['cold']:.3f} s | "
        f"{life['template']:.3f} s | {life['template'] / life['runc']:.1f}x | |",
    ]
    for mode in ("serial", "concurrent"):
        r, c, t = (out["many"][name].get(mode) for name in ("runc", "cold", "template"))
        assert r is not None and t is not None
        target = "0 failures, ≤ 15 s" if mode == "concurrent" else ""
        cold = (f"{c['seconds']:.1f} s, {c['failures']} failed" if c
                else "not run (≈ 19 GiB of VMs)")
        lines.append(f"| {args.many} containers, {mode} | {r['seconds']:.1f} s, "
                     f"{r['failures']} failed | {cold} | "
                     f"{t['seconds']:.1f} s, {t['failures']} failed"
                     f" | {t['seconds'] / r['seconds']:.1f}x | {target} |")
    lines += ["", "| host memory per idle sandbox (PSS of QEMU + monitor; runc: of the "
              "container's process) | runc | cold | templated | templated: monitor / QEMU (of "
              "which TCG code buffer) | guest memory used | target |",
              "|---|---|---|---|---|---|---|"]
    densities = [int(x) for x in args.densities.split(",")]
    for n in densities:
        r, c, t = (out["memory"][f"{name}@{n}"] for name in ("runc", "cold", "template"))
        lines.append(f"| {n} sandbox{'es' if n > 1 else ''} | {r['pss_mib_per_sandbox']:.1f} MiB"
                     f" | {c['pss_mib_per_sandbox']:.1f} MiB | "
                     f"{t['pss_mib_per_sandbox']:.1f} MiB | {t['monitor_mib']:.1f} / "
                     f"{t['qemu_mib']:.1f} ({t['tcg_buffer_mib']:.1f}) MiB | "
                     f"{t['guest_used_mib']:.1f} MiB | ≤ 40 MiB templated |"
                     + "".join(f" {name}: {m['failures']} failed to start |"
                               for name, m in (("cold", c), ("templated", t))
                               if m.get("failures")))
    with RESULTS.open("a") as f:
        f.write("\n".join(lines) + "\n")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = ["runc", "cold", "template"]
    left.bar(names, [run[n] for n in names], color=["#888", "#c44", "#4a4"])
    left.set_ylabel("seconds (median)")
    left.set_title("`run` of busybox true")
    for name, color in (("runc", "#888"), ("cold", "#c44"), ("template", "#4a4")):
        right.plot(densities, [out["memory"][f"{name}@{n}"]["pss_mib_per_sandbox"]
                               for n in densities], marker="o", color=color, label=name)
    right.axhline(40, color="#4a4", linestyle="--", label="target 40 MiB (templated)")
    right.set_xlabel("idle sandboxes")
    right.set_ylabel("PSS per sandbox (MiB)")
    right.set_title("host memory per sandbox")
    right.legend()
    fig.tight_layout()
    fig.savefig(ROOT / "benchmarks" / "density.png", dpi=100)


if __name__ == "__main__":
    sys.exit(main())
