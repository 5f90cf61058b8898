"""Stdio benchmark: strongbox against runc, 100 MiB through a container's stdout and stdin.

Same session, alternating runtimes, medians (after a warm-up), with the same bundle:
(1) ``run`` of ``head -c N /dev/zero``: the benchmark reads the container's stdout from
    a pipe and checks that exactly N bytes arrived;
(2) ``run`` of ``sh -c 'cat > /dev/null'``: the benchmark writes N bytes into the
    container's stdin (a pipe) and closes it; the clock stops when ``run`` exits;
(3) ``run`` of ``true``: what starting and removing a container costs by itself, so the
    table can also show the transfer alone (each measure minus this one).
The path measured is the whole of it: guest pipe -> agent -> virtio-serial -> monitor
-> the caller's fd (and back for stdin).

Usage: .venv/bin/python benchmarks/stdio.py [--runs N] [--mib M] [--no-write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.boot import emit, machine  # noqa: E402
from benchmarks.cli import STRONGBOX, alternating_medians, bench_args  # noqa: E402
from tests.framework.bundle import make_bundle  # noqa: E402

BLOCK = b"\0" * (1 << 20)


def _own_args() -> argparse.Namespace:
    """This benchmark's options; bench_args (shared) then parses --runs and --no-write."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--mib", type=int, default=100)
    own, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    return own


def _run_argv(runtime: list[str], bundle: Path, cid: str) -> list[str]:
    return [*runtime, "run", "--bundle", str(bundle), cid]


def stdout_run(runtime: list[str], bundle: Path, cid: str, nbytes: int) -> float:
    """Seconds for ``run`` of a bundle writing ``nbytes`` to stdout, read here to the end."""
    return read_all(_run_argv(runtime, bundle, cid), nbytes)


def read_all(argv: list[str], nbytes: int) -> float:
    """Seconds for ``argv`` to exit 0 having written exactly ``nbytes`` to its stdout (a
    pipe read here to the end)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    got = 0
    while chunk := proc.stdout.read1(1 << 20):
        got += len(chunk)
    code = proc.wait(timeout=300)
    elapsed = time.monotonic() - started
    if code != 0 or got != nbytes:
        raise SystemExit(f"{argv}: exit {code}, {got} of {nbytes} bytes")
    return elapsed


def stdin_run(runtime: list[str], bundle: Path, cid: str, nbytes: int) -> float:
    """Seconds for ``run`` of a bundle reading its stdin to the end, fed ``nbytes`` here."""
    return feed_all(_run_argv(runtime, bundle, cid), nbytes)


def feed_all(argv: list[str], nbytes: int) -> float:
    """Seconds for ``argv`` to exit 0 once fed ``nbytes`` on its stdin (a pipe closed
    after the last byte)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    feed = proc.stdin

    def writer() -> None:
        left = nbytes
        try:
            while left:
                n = min(left, len(BLOCK))
                feed.write(BLOCK[:n])
                left -= n
        finally:
            feed.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    code = proc.wait(timeout=300)
    thread.join(10)
    elapsed = time.monotonic() - started
    if code != 0:
        raise SystemExit(f"{argv}: exit {code}")
    return elapsed


def plain_run(runtime: list[str], bundle: Path, cid: str) -> float:
    started = time.monotonic()
    result = subprocess.run(_run_argv(runtime, bundle, cid), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{runtime[0]} {cid}: exit {result.returncode}: "
                         f"{result.stderr.decode(errors='replace')[-500:]}")
    return elapsed


def main() -> int:
    own = _own_args()
    args, runc = bench_args(__doc__)
    nbytes = own.mib << 20
    with tempfile.TemporaryDirectory(prefix="sbx-bench-stdio-") as tmp:
        base = Path(tmp)
        out_bundle = make_bundle(base / "out", ["head", "-c", str(nbytes), "/dev/zero"])
        in_bundle = make_bundle(base / "in", ["sh", "-c", "cat > /dev/null"],
                                rootfs=out_bundle / "rootfs")
        true_bundle = make_bundle(base / "true", ["true"], rootfs=out_bundle / "rootfs")
        runtimes = {"runc": [runc, "--root", str(base / "runc-root")],
                    "strongbox": [*STRONGBOX, "--root", str(base / "sb-root")]}

        def measure(i: int) -> dict[str, float]:
            row: dict[str, float] = {}
            for name, cmd in runtimes.items():
                row[f"stdout_{name}"] = stdout_run(cmd, out_bundle, f"o{name[0]}{i}", nbytes)
                row[f"stdin_{name}"] = stdin_run(cmd, in_bundle, f"i{name[0]}{i}", nbytes)
                row[f"true_{name}"] = plain_run(cmd, true_bundle, f"t{name[0]}{i}")
            return row

        med = alternating_medians(args.runs, measure)
    rows = []
    for measure_name, label in (("stdout", f"`head -c {own.mib}MiB` -> stdout"),
                                ("stdin", f"{own.mib} MiB -> stdin (`cat > /dev/null`)")):
        runc_s, sb_s = med[f"{measure_name}_runc"], med[f"{measure_name}_strongbox"]
        runc_x = runc_s - med["true_runc"]
        sb_x = sb_s - med["true_strongbox"]
        rows.append(f"| {label} | {runc_s:.3f} s | {sb_s:.3f} s | {sb_s / runc_s:.1f}x | "
                    f"{runc_x:.3f} s | {sb_x:.3f} s | {sb_x / max(runc_x, 1e-3):.1f}x |")
    lines = [
        f"\n## stdio — {time.strftime('%Y-%m-%d %H:%M')}\n",
        f"Machine: {machine()}. Median of {args.runs} alternating runs (after a warm-up); "
        f"`run` of `true`: runc {med['true_runc']:.3f} s, strongbox "
        f"{med['true_strongbox']:.3f} s (the transfer columns subtract it).\n",
        "| measure | runc | strongbox | ratio | transfer runc | transfer strongbox | ratio |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    emit(lines, not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
