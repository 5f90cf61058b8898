"""What NIC slots cost a container's start: the lifecycle with and without them.

Same session, alternating, medians: ``create`` + ``start`` + (busybox ``true`` exits) +
``delete`` with runc (the baseline) and strongbox in three set-ups of the same bundle in
a network namespace an engine prepared (a veth with an address and a default route, as
podman and CNI leave it, named eth0): ``[network] internetworking_model = "none"`` (no NIC, the VM
has lo only), the default (two slots, the veth spliced to one, the agent configuring
eth0 and hiding the other) and four slots. gVisor's ``runsc`` is measured beside runc
when it is installed. Results are appended to RESULTS.md.

Usage: .venv/bin/python benchmarks/nic_slots.py [--runs N] [--no-write]
"""

from __future__ import annotations

import shutil
import subprocess
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
from tests.framework.bundle import make_bundle, read_spec, write_spec  # noqa: E402
from tests.framework.networld import engine_world  # noqa: E402

SETUPS = {"no NIC (model none)": '[network]\ninternetworking_model = "none"\n',
          "2 NIC slots (default)": "",
          "4 NIC slots": "[network]\nnic_slots = 4\n"}


def main() -> int:
    args, runc = bench_args(__doc__)
    runsc = shutil.which("runsc")
    with tempfile.TemporaryDirectory(prefix="sbx-bench-nic-") as tmp, engine_world() as world:
        inside = ["ip", "-n", world.name]  # named eth0, as podman, Docker and CNI name it
        for step in (["link", "set", world.veth, "down"],
                     ["link", "set", world.veth, "name", "eth0"], ["link", "set", "eth0", "up"],
                     ["route", "replace", "default", "via", "10.231.7.1"]):
            subprocess.run([*inside, *step], check=True)
        base = Path(tmp)
        bundle = make_bundle(base / "b", ["true"])
        spec = read_spec(bundle)
        spec["linux"]["namespaces"] = [
            *(n for n in spec["linux"]["namespaces"] if n["type"] != "network"),
            {"type": "network", "path": world.netns}]
        write_spec(bundle, spec)
        runtimes = {"runc": [runc, "--root", str(base / "runc")]}
        if runsc is not None:
            runtimes["runsc (gVisor)"] = [runsc, "--network=none", "--root", str(base / "rs")]
        for n, (name, toml) in enumerate(SETUPS.items()):
            (base / f"{n}.toml").write_text(toml)
            runtimes[f"strongbox, {name}"] = [*STRONGBOX, "--config", str(base / f"{n}.toml"),
                                              "--root", str(base / "sb")]

        def measure(i: int) -> dict[str, float]:
            return {name: lifecycle(argv, bundle, f"nic{i}-{n}")
                    for n, (name, argv) in enumerate(runtimes.items())}

        med = alternating_medians(args.runs, measure)
    for name, value in med.items():
        print(f"{name}: {value:.3f} s")
    if not args.no_write:
        append_ratio_table("NIC slots at start (issue 13)",
                           "`create` + `start` + exit + `delete` of busybox `true` in a "
                           "namespace holding a configured veth; median of "
                           f"{args.runs} alternating runs after a warm-up; cold boots.", med,
                           "runc", gvisor=runsc is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
