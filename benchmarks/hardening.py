"""What secure-by-default costs: a container's life with the jailer off and on (the default).

Same session, alternating, medians: ``create`` + ``start`` + (busybox ``true`` exits) +
``delete`` with runc (the baseline), strongbox with ``jailer = false`` (QEMU's seccomp
filter only) and strongbox as configured by default (seccomp, chroot, namespaces, own
uid, cgroup). gVisor's ``runsc`` is measured beside runc when it is installed.
Results are appended to RESULTS.md.

Usage: .venv/bin/python benchmarks/hardening.py [--runs N] [--no-write]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.cli import (  # noqa: E402
    STRONGBOX,
    alternating_medians,
    append_ratio_table,
    bench_args,
    lifecycle,
)
from tests.framework.bundle import make_bundle  # noqa: E402


def main() -> int:
    args, runc = bench_args(__doc__)
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
        append_ratio_table("Secure by default (issue 11)",
                           "`create` + `start` + exit + `delete` of busybox `true`; median of "
                           f"{args.runs} alternating runs after a warm-up.", med, "runc",
                           gvisor=runsc is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
