"""What behaving like runc costs: a container's life with and without a host cgroup.

Same session, alternating, medians: ``create`` + ``start`` + (busybox ``true`` exits) +
``delete`` with runc (the baseline) and strongbox, each for a bundle without
``linux.cgroupsPath`` and one naming a cgroup with memory, pids and CPU limits (what
Docker and podman send): strongbox then creates it in every hierarchy, moves the monitor
in before QEMU starts, moves QEMU's emulator threads out of the CPU hierarchies and
removes it on delete. Every strongbox monitor also starts in pid and mount namespaces of
its own (both rows). gVisor's ``runsc`` is measured beside runc when it is installed.
Results are appended to RESULTS.md.

Usage: .venv/bin/python benchmarks/host_cgroups.py [--runs N] [--no-write]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import uuid
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

LIMITS = {"memory": {"limit": 256 * 1024 * 1024}, "pids": {"limit": 100},
          "cpu": {"quota": 100000, "period": 100000}}


def _remove_parent(parent: str) -> None:
    for mount in Path("/sys/fs/cgroup").iterdir():
        for directory in sorted((mount / parent).glob("**/"), reverse=True):
            directory.rmdir()


def main() -> int:
    args, runc = bench_args(__doc__)
    runsc = shutil.which("runsc")
    parent = f"sbxbench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="sbx-bench-cg-") as tmp:
        base = Path(tmp)
        plain = make_bundle(base / "plain", ["true"])
        grouped = make_bundle(base / "grouped", ["true"], linux__resources=LIMITS)
        (base / "default.toml").write_text("")
        strongbox = [*STRONGBOX, "--config", str(base / "default.toml"), "--root",
                     str(base / "sb")]
        runtimes = {
            "runc, no cgroupsPath": ([runc, "--root", str(base / "runc")], plain),
            "runc, cgroupsPath + limits": ([runc, "--root", str(base / "runc")], grouped),
            "strongbox, no cgroupsPath": (strongbox, plain),
            "strongbox, cgroupsPath + limits": (strongbox, grouped),
        }
        if runsc is not None:
            runtimes["runsc (gVisor)"] = ([runsc, "--network=none", "--root",
                                           str(base / "runsc")], plain)

        def measure(i: int) -> dict[str, float]:
            results = {}
            for n, (name, (argv, bundle)) in enumerate(runtimes.items()):
                cid = f"cg{i}-{n}"
                if bundle is grouped:  # a cgroup of its own each time, as Docker gives
                    data = json.loads((bundle / "config.json").read_text())
                    data["linux"]["cgroupsPath"] = f"/{parent}/{cid}"
                    (bundle / "config.json").write_text(json.dumps(data))
                results[name] = lifecycle(argv, bundle, cid)
            return results

        try:
            med = alternating_medians(args.runs, measure)
        finally:
            _remove_parent(parent)
    for name, value in med.items():
        print(f"{name}: {value:.3f} s")
    if not args.no_write:
        append_ratio_table("Host cgroups and the monitor's own namespaces (issue 12)",
                           "`create` + `start` + exit + `delete` of busybox `true`; median of "
                           f"{args.runs} alternating runs after a warm-up; cold boots.", med,
                           "runc, no cgroupsPath", gvisor=runsc is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
