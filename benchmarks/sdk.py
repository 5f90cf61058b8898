"""SDK benchmark: from ``Sandbox.create`` to the first byte of ``echo``, against runc.

Same session, medians of alternating rows after a warm-up row:

* runc: ``runc run`` of a bundle whose process is ``echo hi``, timed to the first byte
  of its output on a pipe (the baseline: a container without a VM);
* the SDK, cold (a VM booted for the sandbox), from a VM template (a clone), and from
  the warm pool (a running VM handed over): ``Sandbox.create(image)`` then
  ``sb.run("echo hi", on_stdout=...)``, timed to the callback's first byte, with
  create, the first run alone, and ``close`` apart;
* a second ``run`` in a running sandbox (what each command costs once it exists),
  and a 20 MiB ``files.write`` + ``files.read`` round trip.

Where the time goes: ``create`` is one ``strongbox run --detach --overlay`` (a Python
start of the command line, the VM's start, the container's create and start) and
the image's unpack, cached after the warm-up row; a ``run`` is one exec over the
monitor's control socket. ``snapshot``/``fork`` rows are absent: not built yet.

Usage: .venv/bin/python benchmarks/sdk.py [--runs N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
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

import strongbox  # noqa: E402
from benchmarks.boot import emit, machine  # noqa: E402
from tests.framework.bundle import make_bundle, make_rootfs  # noqa: E402
from tests.framework.images import oci_archive  # noqa: E402
from tests.framework.pool import WarmPool  # noqa: E402
from tests.framework.procs import wait_until  # noqa: E402


def runc_first_byte(runc: str, root: Path, bundle: Path, cid: str) -> float:
    started = time.monotonic()
    proc = subprocess.Popen([runc, "--root", str(root), "run", "--bundle", str(bundle), cid],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.read(1)
    first = time.monotonic() - started
    proc.communicate(timeout=60)
    return first


def sdk_row(image: Path, root: Path, config: Path | None) -> dict[str, float]:
    first: list[float] = []
    started = time.monotonic()
    sb = strongbox.Sandbox.create(image, root=root, config=config)
    created = time.monotonic()
    try:
        sb.run("echo hi", on_stdout=lambda _: first or first.append(time.monotonic()))
        ran = time.monotonic()
        again = time.monotonic()
        sb.run("echo hi")
        again = time.monotonic() - again
    finally:
        closing = time.monotonic()
        sb.close()
        closed = time.monotonic() - closing
    return {"first byte": first[0] - started, "create": created - started,
            "first run": ran - created, "next run": again, "close": closed}


def files_row(image: Path, root: Path) -> dict[str, float]:
    data = os.urandom(20 << 20)
    with strongbox.Sandbox.create(image, root=root) as sb:
        started = time.monotonic()
        sb.files.write("/tmp/blob", data)
        wrote = time.monotonic()
        assert sb.files.read("/tmp/blob") == data
        return {"write 20 MiB": wrote - started, "read 20 MiB": time.monotonic() - wrote}


def _median_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runc = shutil.which("runc")
    if runc is None:
        sys.exit("runc is not installed")
    with tempfile.TemporaryDirectory(prefix="sbx-bench-sdk-", dir="/dev/shm") as tmp:
        base = Path(tmp)
        image = oci_archive(make_rootfs(base / "rootfs"), base / "busybox.oci.tar")
        bundle = make_bundle(base / "echo", ["echo", "hi"])
        template = base / "template.toml"
        template.write_text(f'[factory]\nenable_template = true\n'
                            f'template_path = "{base}/template"\n')
        subprocess.run([sys.executable, "-m", "strongbox", "--config", str(template),
                        "--root", str(base / "t0"), "factory", "init"], check=True,
                       capture_output=True)
        rows: dict[str, list[dict[str, float]]] = {}
        with WarmPool(base / "pool", size=2) as pool:
            modes: dict[str, Callable[[int], dict[str, float]]] = {
                "runc": lambda i: {"first byte": runc_first_byte(runc, base / "runc", bundle,
                                                                 f"r{i}")},
                "cold": lambda i: sdk_row(image, base / "cold", None),
                "template": lambda i: sdk_row(image, base / "tpl", template),
                "pool": lambda i: sdk_row(image, base / "pooled", pool.config),
            }
            for root in ("runc", "cold", "tpl", "pooled"):
                (base / root).mkdir()
            for i in range(args.runs + 1):
                for name, measure in modes.items():
                    if name == "pool" and not wait_until(
                            lambda: pool.status()["free"] >= 1, 300, 0.2):
                        sys.exit("the pool did not refill")
                    row = measure(i)
                    print(f"row {i} {name}: " + "  ".join(f"{k} {v:.3f}" for k, v in
                                                         row.items()), file=sys.stderr)
                    if i:
                        rows.setdefault(name, []).append(row)
        med = {name: _median_rows(r) for name, r in rows.items()}
        med["files"] = _median_rows([files_row(image, base / "cold") for _ in range(3)])
    print(json.dumps(med, indent=2))
    if not args.no_write:
        write(med, args.runs)
    return 0


def write(med: dict[str, dict[str, float]], runs: int) -> None:
    runc = med["runc"]["first byte"]
    lines = [
        f"\n## SDK: create to the first byte of echo (issue 17) — "
        f"{time.strftime('%Y-%m-%d %H:%M')}", "",
        f"Machine: {machine()}. Medians of {runs} alternating rows after a warm-up; runc's "
        "`run` of the same `echo hi` is the baseline from the same run (runsc is not "
        "installed here).", "",
        "| start | create -> first byte | vs runc | create | first run | next run | close |",
        "|---|---|---|---|---|---|---|",
        f"| runc run | {runc:.3f} s | 1.0x | | | | |",
    ]
    for name, label in (("cold", "SDK, cold boot"), ("template", "SDK, template clone"),
                        ("pool", "SDK, warm pool")):
        m = med[name]
        lines.append(f"| {label} | {m['first byte']:.3f} s | {m['first byte'] / runc:.1f}x "
                     f"| {m['create']:.3f} s | {m['first run']:.3f} s | {m['next run']:.3f} s"
                     f" | {m['close']:.3f} s |")
    files = med["files"]
    lines += ["", f"Files: a 20 MiB `files.write` takes {files['write 20 MiB']:.3f} s and its "
              f"`files.read` {files['read 20 MiB']:.3f} s (medians of 3).", "",
              "Where the time goes: `create` is one `strongbox run --detach --overlay` "
              "(a Python start of the command line, the VM's start or hand-over, the "
              "container's create and start; the image's unpack is cached after the warm-up "
              "row); the first run is one exec over the monitor's control socket, and a next "
              "run costs the same. Snapshot and fork are not built yet, so their rows "
              "(snapshot time and pause, fork(10), PSS of ten forks) are absent.", ""]
    emit(lines, True)


if __name__ == "__main__":
    sys.exit(main())
