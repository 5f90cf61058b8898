"""Start-phase benchmark: where the time of ``run true`` goes, from the start timeline.

Same session, alternating: ``runc run`` of a busybox ``true`` bundle (the baseline),
``strongbox run`` cold, and ``strongbox run`` cloned from a template (made once,
before timing). Each strongbox run has ``--debug --log F --log-format json``; the
timeline's records (:mod:`strongbox.timeline`) give every phase's duration. The
wall time is measured outside; ``exit seen`` counts from create, so it overlaps
``process started`` and the phases do not add up to the wall time. Medians; one
table is appended to RESULTS.md.

Usage: .venv/bin/python benchmarks/start_phases.py [--runs N] [--no-write]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.boot import RESULTS, machine  # noqa: E402
from benchmarks.cli import STRONGBOX, bench_args, timed  # noqa: E402
from tests.framework.bundle import make_bundle  # noqa: E402


def strongbox_run(config: Path, root: Path, bundle: Path, cid: str, log: Path
                  ) -> tuple[float, dict[str, float]]:
    """Wall seconds of one ``run``, and its phases (seconds, summed per name)."""
    log.unlink(missing_ok=True)
    wall = timed([*STRONGBOX, "--config", str(config), "--root", str(root), "--debug",
                  "--log", str(log), "--log-format", "json", "run", "--bundle", str(bundle),
                  cid])
    phases: dict[str, float] = {}
    for line in log.read_text().splitlines():
        record = json.loads(line)
        if "phase" in record:
            phases[record["phase"]] = phases.get(record["phase"], 0.0) + record["duration_s"]
    return wall, phases


def main() -> int:
    args, runc = bench_args(__doc__ or "")
    base = Path(tempfile.mkdtemp(prefix="sbx-phases-", dir="/dev/shm"))
    bundle = make_bundle(base / "bundle", ["true"], root__readonly=False)
    configs = {"cold": base / "cold.toml", "template": base / "template.toml"}
    configs["cold"].write_text("")
    configs["template"].write_text(f'[factory]\nenable_template = true\n'
                                   f'template_path = "{base}/template"\n')
    subprocess.run([*STRONGBOX, "--config", str(configs["template"]), "--root",
                    str(base / "root"), "factory", "init"], check=True, capture_output=True)
    walls: dict[str, list[float]] = {"runc": [], "cold": [], "template": []}
    phases: dict[str, dict[str, list[float]]] = {"cold": {}, "template": {}}
    for i in range(args.runs + 1):
        row = {"runc": timed([runc, "--root", str(base / "runc"), "run", "--bundle",
                              str(bundle), f"r{i}"])}
        for mode, config in configs.items():
            wall, seen = strongbox_run(config, base / "root", bundle, f"{mode}{i}",
                                       base / "log.json")
            row[mode] = wall
            if i:
                for name, seconds in seen.items():
                    phases[mode].setdefault(name, []).append(seconds)
        print(f"run {i}: " + "  ".join(f"{k} {v:.3f}s" for k, v in row.items()),
              file=sys.stderr)
        if i:  # the first row warms caches
            for key, value in row.items():
                walls[key].append(value)
    med = {k: statistics.median(v) for k, v in walls.items()}
    table = {mode: {name: statistics.median(v) for name, v in seen.items()}
             for mode, seen in phases.items()}
    print(json.dumps({"wall": med, "phases": table}, indent=2))
    if not args.no_write:
        write(med, table, args.runs)
    subprocess.run(["rm", "-rf", str(base)], check=False)
    return 0


def write(med: dict[str, float], table: dict[str, dict[str, float]], runs: int) -> None:
    when = time.strftime("%Y-%m-%d %H:%M")
    lines = [f"\n## Where a start's time goes (start timeline) — {when}\n",
             f"Machine: {machine()}. `run true` of a busybox bundle, {runs} alternating runs "
             "after a warm-up, medians; strongbox phases from its own `--debug` timeline "
             "(`--log-format json`). runc `run true` in the same run: "
             f"**{med['runc']:.3f} s**.\n",
             "| phase | cold | template clone |", "|---|---|---|"]
    names = list(dict.fromkeys([*table["cold"], *table["template"]]))
    for name in names:
        cells = [f"{table[m][name]:.3f} s" if name in table[m] else "—"
                 for m in ("cold", "template")]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    lines.append(f"| **wall** | **{med['cold']:.3f} s ({med['cold'] / med['runc']:.0f}x runc)**"
                 f" | **{med['template']:.3f} s ({med['template'] / med['runc']:.0f}x runc)** |")
    with RESULTS.open("a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
