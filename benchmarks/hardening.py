"""What secure-by-default costs: a container's life with the jailer off and on (the default).

Same session, alternating, medians: ``create`` + ``start`` + (busybox ``true`` exits) +
``delete`` with runc (the baseline), strongbox with ``jailer = false`` (QEMU's seccomp
filter only) and strongbox as configured by default (seccomp, chroot, namespaces, own
uid, cgroup). gVisor's ``runsc`` is measured beside runc when it is installed.
Results are appended to RESULTS.md.

Usage: .venv/bin/python benchmarks/hardening.py [--runs N] [--no-write]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.boot import RESULTS, machine  # noqa: E402
from benchmarks.cli import STRONGBOX, alternating_medians, lifecycle  # noqa: E402
from tests.framework.bundle import make_bundle  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runc = shutil.which("runc")
    if runc is None:
        sys.exit("runc is not installed")
    runsc = shutil.which("runsc")
    with tempfile.TemporaryDirectory(prefix="sbx-bench-harden-") as tmp:
        base = Path(tmp)
        bundle = make_bundle(base / "bundle", ["true"])
        (base / "unjailed.toml").write_text("[hypervisor.qemu]\njailer = false\n")
        (base / "default.toml").write_text("")
        runtimes = {
            "runc": [runc, "--root", str(base / "runc-root")],
            "strongbox, jailer off": [*STRONGBOX, "--config", str(base / "unjailed.toml"),
                                      "--root", str(base / "sb-off")],
            "strongbox, default (jailed)": [*STRONGBOX, "--config", str(base / "default.toml"),
                                            "--root", str(base / "sb-on")],
        }
        if runsc is not None:
            runtimes["runsc (gVisor)"] = [runsc, "--network=none", "--root",
                                          str(base / "runsc-root")]
        med = alternating_medians(args.runs, lambda i: {
            name: lifecycle(argv, bundle, f"h{i}-{n}")
            for n, (name, argv) in enumerate(runtimes.items())})
    if not args.no_write:
        stamp = time.strftime("%Y-%m-%d %H:%M")
        lines = [
            f"\n## Secure by default (issue 11) — {stamp}\n",
            f"Machine: {machine()}. `create` + `start` + exit + `delete` of busybox `true`; "
            f"median of {args.runs} alternating runs after a warm-up.\n",
            "| runtime | median | vs runc |",
            "|---|---|---|",
            *(f"| {name} | {value:.3f} s | {value / med['runc']:.1f}x |"
              for name, value in med.items()),
        ]
        if runsc is None:
            lines.append("\n(runsc is not installed here: no gVisor row.)")
        with RESULTS.open("a") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
