"""CLI benchmark: strongbox against runc, through podman and through the raw OCI commands.

Same session, alternating runtimes, medians:
(a) ``podman run --rm --network=none busybox true`` with runc and with strongbox;
(b) ``create`` + ``start`` + (container exits) + ``delete`` of a busybox ``true`` bundle.
Results are appended to RESULTS.md.

Usage: .venv/bin/python benchmarks/cli.py [--runs N] [--no-write]
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.boot import RESULTS, machine  # noqa: E402
from tests.framework.bundle import make_bundle  # noqa: E402
from tests.framework.podman import IMAGE, Podman  # noqa: E402
from tests.framework.pool import WarmPool  # noqa: E402
from tests.framework.procs import wait_until  # noqa: E402

STRONGBOX = [sys.executable, "-m", "strongbox"]


def timed(argv: list[str], **kwargs: object) -> float:
    started = time.monotonic()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=300, **kwargs)  # type: ignore[call-overload]
    return time.monotonic() - started


def lifecycle(runtime: list[str], bundle: Path, cid: str) -> float:
    """create, start, wait until stopped, delete; seconds."""
    started = time.monotonic()
    for verb in (["create", "--bundle", str(bundle)], ["start"]):
        subprocess.run([*runtime, *verb, cid], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    while True:
        state = subprocess.run([*runtime, "state", cid], capture_output=True, text=True)
        if json.loads(state.stdout)["status"] == "stopped":
            break
        time.sleep(0.01)
    subprocess.run([*runtime, "delete", cid], check=True, timeout=300)
    return time.monotonic() - started


def bench_args(doc: str) -> tuple[argparse.Namespace, str]:
    """``--runs``/``--no-write``, and runc's path (every benchmark's baseline)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runc = shutil.which("runc")
    if runc is None:
        sys.exit("runc is not installed")
    return args, runc


def append_ratio_table(title: str, caption: str, med: dict[str, float], baseline: str,
                       *, gvisor: bool) -> None:
    """A RESULTS.md section: one row per runtime, its median and its ratio to ``baseline``."""
    lines = [
        f"\n## {title} — {time.strftime('%Y-%m-%d %H:%M')}\n",
        f"Machine: {machine()}. {caption}\n",
        f"| runtime | median | vs {baseline} |",
        "|---|---|---|",
        *(f"| {name} | {value:.3f} s | {value / med[baseline]:.1f}x |"
          for name, value in med.items()),
    ]
    if not gvisor:
        lines.append("\n(runsc is not installed here: no gVisor row.)")
    with RESULTS.open("a") as f:
        f.write("\n".join(lines) + "\n")


def alternating_medians(runs: int, measure: Callable[[int], dict[str, float]]
                        ) -> dict[str, float]:
    """Medians of ``runs`` rows of ``measure(i)`` (one timing per runtime, taken in turn),
    after one warm-up row; each row is printed as it comes."""
    results: dict[str, list[float]] = {}
    for i in range(runs + 1):
        row = measure(i)
        if i == 0:
            continue  # warm-up
        for key, value in row.items():
            results.setdefault(key, []).append(value)
        print(f"run {i}: " + "  ".join(f"{k} {v:.3f}s" for k, v in row.items()),
              file=sys.stderr)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(json.dumps(med, indent=2))
    return med


def main() -> int:
    args, runc = bench_args(__doc__)
    with tempfile.TemporaryDirectory(prefix="sbx-bench-cli-") as tmp:
        base = Path(tmp)
        (base / "podman").mkdir()
        podman = Podman(base / "podman")
        podman.load_busybox()
        bundle = make_bundle(base / "bundle", ["true"])
        runc_cmd = [runc, "--root", str(base / "runc-root")]
        sb_cmd = [*STRONGBOX, "--root", str(base / "sb-root")]
        with WarmPool(base / "pool", size=2) as pool:
            pooled = str(podman.runtime_wrapper("strongbox-pooled", pool.config))

            def measure(i: int) -> dict[str, float]:
                row = {
                    "podman_runc": timed(podman.argv("run", "--rm", "--network=none", IMAGE,
                                                     "true", runtime=runc), env=podman.env),
                    "podman_strongbox": timed(podman.argv("run", "--rm", "--network=none",
                                                          IMAGE, "true"), env=podman.env),
                    "oci_runc": lifecycle(runc_cmd, bundle, f"r{i}"),
                    "oci_strongbox": lifecycle(sb_cmd, bundle, f"s{i}"),
                }
                wait_until(lambda: pool.status()["free"] >= 1, 300, 0.2)
                row["podman_pool"] = timed(podman.argv("run", "--rm", "--network=none", IMAGE,
                                                       "true", runtime=pooled), env=podman.env)
                return row

            med = alternating_medians(args.runs, measure)
    if not args.no_write:
        stamp = time.strftime("%Y-%m-%d %H:%M")
        ratio_pm = med["podman_strongbox"] / med["podman_runc"]
        ratio_oci = med["oci_strongbox"] / med["oci_runc"]
        lines = [
            f"\n## CLI — {stamp}\n",
            f"Machine: {machine()}. Median of {args.runs} alternating runs (after a warm-up).\n",
            "| measure | runc | strongbox | ratio |",
            "|---|---|---|---|",
            f"| `podman run --rm --network=none busybox true` | {med['podman_runc']:.3f} s | "
            f"{med['podman_strongbox']:.3f} s | {ratio_pm:.1f}x |",
            f"| `podman run --rm --network=none busybox true`, warm pool | "
            f"{med['podman_runc']:.3f} s | {med['podman_pool']:.3f} s | "
            f"{med['podman_pool'] / med['podman_runc']:.1f}x |",
            f"| `create` + `start` + exit + `delete` (busybox `true`) | {med['oci_runc']:.3f} s | "
            f"{med['oci_strongbox']:.3f} s | {ratio_oci:.1f}x |",
        ]
        with RESULTS.open("a") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
