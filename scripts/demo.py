"""`make demo`: boot a microVM, then run a busybox container in one and show what it sees.

The bundle is built on the spot from Debian's busybox-static (no registry),
with the config.json `strongbox` itself would write (`oci.defaults`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from strongbox.oci.defaults import default_spec

SCRIPT = r"""
echo "== inside the container (a microVM of its own) =="
echo "kernel:   $(uname -r)"
echo "hostname: $(hostname)"
echo "whoami:   $(id)"
echo "pid:      $$ (PID 1 of its own namespace)"
echo "memory:   $(grep MemTotal /proc/meminfo)"
echo "cpus:     $(grep -c ^processor /proc/cpuinfo)"
echo "network:  $(cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
echo "/dev/kvm: $(test -e /dev/kvm && echo present || echo absent)"
"""


def build_bundle(path: Path) -> Path:
    rootfs = path / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["sh", "-c", SCRIPT]
    spec["hostname"] = "strongbox-demo"
    (path / "config.json").write_text(json.dumps(spec, indent=2))
    return path


def main() -> int:
    strongbox = [sys.executable, "-m", "strongbox"]
    print("== strongbox guest boot: a bare microVM and its agent ==", flush=True)
    if subprocess.run([*strongbox, "guest", "boot"]).returncode != 0:
        return 1
    with tempfile.TemporaryDirectory(prefix="strongbox-demo-") as tmp:
        bundle = build_bundle(Path(tmp))
        print(f"\n== strongbox run --bundle {bundle} demo ==", flush=True)
        return subprocess.run([*strongbox, "run", "--bundle", str(bundle), "demo"]).returncode


if __name__ == "__main__":
    sys.exit(main())
