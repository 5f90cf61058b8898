"""I/O benchmark: a container's file-system I/O under runc against strongbox over 9p and
over virtio-blk (microvm and q35), and q35's cold boot against microvm's.

Every runtime works on the same kind of storage: an ext4 image on a loop device,
mounted on the host as the bundle's rootfs (what a block snapshotter would hand
over). runc uses it in place; strongbox shares it over 9p (the default) or, with
``disable_block_device_use = false``, takes the device and gives it to the guest as a
virtio-blk disk (attached at boot on microvm, hot-plugged on q35). Inside the
container a small static probe (``tools/sbio.c``, built here with gcc: busybox has no
timer and no random I/O) times, from the guest's own clock so boots do not count:

1. sequential write of 256 MiB in 1 MiB blocks, then fsync;
2. sequential read of a 256 MiB file the host wrote before the container started;
3. 4 KiB random reads, and 4 KiB random writes then fsync, over another such file (IOPS);
4. untarring 5,000 small files (busybox tar), then sync.

The host's page cache is dropped before each container, so reads start cold on both
sides. Medians of alternating runs after a warm-up; ratios against runc in the same
run. Also the cold ``guest boot`` of q35 against microvm (agent ready).

Usage: .venv/bin/python benchmarks/io.py [--runs N] [--ops N] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.boot import RESULTS, machine  # noqa: E402
from tests.framework.blockimage import LoopImage  # noqa: E402
from tests.framework.bundle import make_bundle  # noqa: E402

STRONGBOX = [sys.executable, "-m", "strongbox"]
SEQ_MIB = 256
SMALL_FILES = 5000
Q35 = 'machine_type = "q35"\npcie_root_port = 2\n'
MODES = {
    "9p (microvm)": "",
    "virtio-blk (microvm)": "disable_block_device_use = false\n",
    "virtio-blk (q35)": f"disable_block_device_use = false\n{Q35}",
}


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def prepare(image: LoopImage, probe: Path) -> None:
    """The probe, a 256 MiB file to read and a tarball of small files, on the image."""
    shutil.copy(probe, image.mount / "bin" / "sbio")
    block = os.urandom(1 << 20)
    for name in ("seqfile", "randfile"):  # two: the sequential read must not warm the random
        with open(image.mount / name, "wb") as f:
            for _ in range(SEQ_MIB):
                f.write(block)
    tree = image.mount.parent / "tree"
    for i in range(SMALL_FILES):
        folder = tree / f"d{i // 100}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}").write_bytes(os.urandom(512))
    with tarfile.open(image.mount / "small.tar", "w") as tar:
        tar.add(tree, arcname="tree")
    shutil.rmtree(tree)


SCRIPT = (f"sbio seqwrite /written {SEQ_MIB}; rm /written; sbio seqread /seqfile; "
          "sbio randread /randfile {ops}; sbio randwrite /randfile {ops}; "
          "mkdir /untar && cd /untar && sbio run tar xf /small.tar; cd / && rm -rf /untar")
MEASURES = ("seq write", "seq read", "rand read", "rand write", "untar")


def measure(argv: list[str], ops: int) -> dict[str, float]:
    drop_caches()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr[-800:]}")
    seconds = [float(x) for x in result.stdout.split()]
    if len(seconds) != len(MEASURES):
        raise SystemExit(f"unexpected probe output: {result.stdout!r}")
    values = dict(zip(MEASURES, seconds, strict=True))
    return {"seq write": SEQ_MIB / values["seq write"], "seq read": SEQ_MIB / values["seq read"],
            "rand read": ops / values["rand read"], "rand write": ops / values["rand write"],
            "untar": values["untar"]}


def boot_seconds(machine_type: str, root: Path) -> float:
    report = subprocess.run([*STRONGBOX, "--root", str(root), "guest", "boot", "--machine",
                             machine_type, "--json"], capture_output=True, text=True,
                            check=True)
    return float(json.loads(report.stdout)["agent_ready_s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ops", type=int, default=4096, help="random 4 KiB operations")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    runc = shutil.which("runc")
    if runc is None:
        sys.exit("runc is not installed")
    with tempfile.TemporaryDirectory(prefix="sbx-bench-io-") as tmp:
        base = Path(tmp)
        probe = base / "sbio"
        subprocess.run(["gcc", "-O2", "-static", "-o", str(probe),
                        str(ROOT / "benchmarks" / "tools" / "sbio.c")], check=True)
        with LoopImage(base, base / "bundle" / "rootfs", size_mib=1024) as image:
            prepare(image, probe)
            script = SCRIPT.format(ops=args.ops)
            bundle = make_bundle(base / "bundle", ["sh", "-c", script], rootfs=image.mount,
                                 root__readonly=False, process__env=[
                                     "PATH=/bin:/usr/bin:/sbin:/usr/sbin"])
            runtimes = {"runc": [runc, "--root", str(base / "runc")]}
            for name, toml in MODES.items():
                config = base / f"{len(runtimes)}.toml"
                config.write_text(f"[hypervisor.qemu]\n{toml}")
                runtimes[name] = [*STRONGBOX, "--config", str(config), "--root",
                                  str(base / "sb")]
            rows: dict[str, dict[str, list[float]]] = {}
            for i in range(args.runs + 1):
                for name, rt in runtimes.items():
                    got = measure([*rt, "run", "--bundle", str(bundle), f"io{i}"], args.ops)
                    print(f"run {i} {name}: " + "  ".join(f"{k} {v:.1f}" for k, v in got.items()),
                          file=sys.stderr, flush=True)
                    if i:
                        for key, value in got.items():
                            rows.setdefault(name, {}).setdefault(key, []).append(value)
        boots = {m: statistics.median(boot_seconds(m, base / "boot") for _ in range(args.runs))
                 for m in ("microvm", "q35")}
    med = {name: {k: statistics.median(v) for k, v in row.items()} for name, row in rows.items()}
    print(json.dumps({"medians": med, "boot": boots}, indent=2))
    if not args.no_write:
        write(med, boots, args)
    return 0


def write(med: dict[str, dict[str, float]], boots: dict[str, float],
          args: argparse.Namespace) -> None:
    base = med["runc"]

    def cell(name: str, key: str) -> str:
        value, ratio = med[name][key], med[name][key] / base[key]
        unit = {"seq write": "MB/s", "seq read": "MB/s", "untar": "s"}.get(key, "IOPS")
        if key == "untar":  # a time: lower is better, the ratio says how much slower
            return f"{value:.2f} s ({ratio:.1f}x)"
        return f"{value:,.0f} {unit} ({ratio:.2f}x)"

    names = list(med)
    lines = [
        f"\n## File-system I/O: 9p and virtio-blk against runc (issue 15) — "
        f"{time.strftime('%Y-%m-%d %H:%M')}\n",
        f"Machine: {machine()}. One ext4 image on a loop device for every runtime (runc uses "
        "it in place; strongbox over 9p, or the device as a virtio-blk disk); the probe "
        "(`benchmarks/tools/sbio.c`) times inside the container with the guest's clock, host "
        f"page cache dropped before each container; medians of {args.runs} alternating runs "
        f"after a warm-up; random I/O is {args.ops} operations of 4 KiB. Ratios are against "
        "runc (throughput: runc = 1.00; untar: times slower). runsc is not installed here: no "
        "gVisor column.\n",
        "| measure | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
        *(f"| {key} | " + " | ".join(cell(n, key) for n in names) + " |" for key in MEASURES),
        f"\nCold boot to agent ready (`strongbox guest boot`, median of {args.runs}): microvm "
        f"{boots['microvm']:.3f} s, q35 {boots['q35']:.3f} s "
        f"({boots['q35'] / boots['microvm']:.2f}x).",
    ]
    print("\n".join(lines))
    with RESULTS.open("a") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
