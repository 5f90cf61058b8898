"""containerd benchmark: ``ctr run --rm`` through the strongbox shim against
``io.containerd.runc.v2``, for starts and for 100 MiB through stdout and stdin.

One private containerd (busybox imported) serves both runtimes; strongbox's shim sees a
config with a warm pool (``vm_cache_number``), so its starts are pooled as a user with
the pool on would get them. Same session, alternating rows, medians after a warm-up:

1. ``ctr run --rm IMAGE id true``: runc.v2, strongbox (the pool refilled between rows,
   untimed);
2. ``head -c N /dev/zero`` read here from ``ctr``'s stdout to the end;
3. ``sh -c 'cat > /dev/null'`` fed N bytes on ``ctr``'s stdin.

The stdio rows also show the transfer alone (each minus the ``true`` row).

Usage: .venv/bin/python benchmarks/shim.py [--runs N] [--mib M] [--no-write]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.boot import emit, machine  # noqa: E402
from benchmarks.cli import alternating_medians, bench_args, timed  # noqa: E402
from benchmarks.stdio import _own_args, feed_all, read_all  # noqa: E402
from tests.framework.containerd import IMAGE, RUNTIME, ctr_daemon  # noqa: E402
from tests.framework.pool import WarmPool  # noqa: E402
from tests.framework.procs import wait_until  # noqa: E402

RUNC = "io.containerd.runc.v2"


def main() -> int:
    own = _own_args()
    args, _ = bench_args(__doc__)
    nbytes = own.mib << 20
    with tempfile.TemporaryDirectory(prefix="sbx-bench-shim-", dir="/dev/shm") as tmp:
        base = Path(tmp)
        with WarmPool(base / "pool", size=2) as pool:
            os.environ["STRONGBOX_CONFIG"] = str(pool.config)  # the shim's config
            (base / "ctrd").mkdir()
            with ctr_daemon(base / "ctrd") as ctrd:
                def run(runtime: str, cid: str, *command: str) -> list[str]:
                    return ctrd.ctr_argv("run", "--rm", "--runtime", runtime, IMAGE, cid,
                                         *command)

                def measure(i: int) -> dict[str, float]:
                    row: dict[str, float] = {}
                    for name, runtime in (("runc", RUNC), ("strongbox", RUNTIME)):
                        if name == "strongbox":
                            wait_until(lambda: pool.status()["free"] >= 1, 300, 0.2)
                        row[f"true_{name}"] = timed(run(runtime, f"t{name[0]}{i}", "true"),
                                                    env=ctrd.env)
                        row[f"stdout_{name}"] = read_all(
                            run(runtime, f"o{name[0]}{i}", "head", "-c", str(nbytes),
                                "/dev/zero"), nbytes)
                        row[f"stdin_{name}"] = feed_all(
                            run(runtime, f"i{name[0]}{i}", "sh", "-c", "cat > /dev/null"),
                            nbytes)
                    return row

                med = alternating_medians(args.runs, measure)
                pooled = pool.status()
    rows = [f"| `ctr run --rm busybox true` | {med['true_runc']:.3f} s | "
            f"{med['true_strongbox']:.3f} s | {med['true_strongbox'] / med['true_runc']:.1f}x "
            "| | | |"]
    for key, label in (("stdout", f"`head -c {own.mib}MiB` -> `ctr`'s stdout"),
                       ("stdin", f"{own.mib} MiB -> `ctr`'s stdin (`cat > /dev/null`)")):
        runc_s, sb_s = med[f"{key}_runc"], med[f"{key}_strongbox"]
        runc_x, sb_x = runc_s - med["true_runc"], sb_s - med["true_strongbox"]
        rows.append(f"| {label} | {runc_s:.3f} s | {sb_s:.3f} s | {sb_s / runc_s:.1f}x | "
                    f"{runc_x:.3f} s | {sb_x:.3f} s | {sb_x / max(runc_x, 1e-3):.1f}x |")
    lines = [
        f"\n## containerd: `ctr run --rm` through the shim — {time.strftime('%Y-%m-%d %H:%M')}"
        "\n",
        f"Machine: {machine()}. Median of {args.runs} alternating rows (after a warm-up), "
        f"one containerd for both; runc is `{RUNC}`; strongbox's shim with a warm pool of 2 "
        f"({pooled['claims'] - pooled['misses']} of {pooled['claims']} starts pooled). "
        "runsc is not installed here: no gVisor column.\n",
        "| measure | runc.v2 | strongbox | ratio | transfer runc | transfer strongbox "
        "| ratio |", "|---|---|---|---|---|---|---|", *rows,
    ]
    emit(lines, not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
