"""Secure by default: QEMU confined without being asked, guest-driven host files capped,
host paths resolved without following planted symlinks (issue 11, points 1-3)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.bundle import DEFAULT_CAPS, make_bundle
from tests.framework.procs import qemu_pids, wait_until

pytestmark = pytest.mark.vm

#: What a "privileged" container gets: every capability, every device.
ALL_CAPS = [*DEFAULT_CAPS, "CAP_MKNOD", "CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]


class Box:
    """The CLI with a private root and, optionally, a configuration file."""

    def __init__(self, root: Path, tmp: Path, config: str = "") -> None:
        self.root, self.tmp = root, tmp
        self.config = tmp / "config.toml"
        self.config.write_text(config)
        self.ids: list[str] = []

    def __call__(self, *args: str | Path, timeout: float = 120) -> cli.Result:
        return cli.run("--config", self.config, "--root", self.root, *args, timeout=timeout)

    def run_detached(self, cid: str, bundle: Path) -> cli.Result:
        """``run -d`` with files for stdio: the container keeps them (pipes would not end)."""
        self.ids.append(cid)
        argv = cli.strongbox_argv("--config", self.config, "--root", self.root, "run", "-d",
                                  "--bundle", bundle, cid)
        err = self.tmp / f"{cid}.err"
        with (self.tmp / f"{cid}.out").open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                                  stderr=stderr, timeout=120)
        return cli.Result(argv, proc.returncode, "", err.read_text())

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "--force", cid)


@pytest.fixture
def box(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[Box]:
    b = Box(no_leaks, tmp_path)
    yield b
    b.cleanup()


def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


# --- 3: confined by default ----------------------------------------------------------------

@pytest.mark.parametrize("jailer", ["default", "off"])
def test_qemu_runs_under_its_seccomp_filter(box: Box, tmp_path: Path, jailer: str) -> None:
    if jailer == "off":
        box.config.write_text("[hypervisor.qemu]\njailer = false\n")
    box.run_detached("sc", make_bundle(tmp_path / "b", ["sleep", "600"])).check()
    (qemu,) = qemu_pids(str(box.root))
    status = _status(qemu)
    assert status["Seccomp"].strip() == "2"  # SECCOMP_MODE_FILTER
    jailed = status["Uid"].split()[0] != "0"
    assert jailed == (jailer == "default"), status["Uid"]
    if jailed:  # the default is the jailer's chroot and namespaces, too
        assert Path(f"/proc/{qemu}/root").resolve() == box.root / "vms" / "sc" / "jail"
        assert status["NSpid"].split()[-1] == "1"


# --- 2: a flooding console is capped --------------------------------------------------------

def test_a_flooding_console_is_capped(box: Box, tmp_path: Path) -> None:
    box.config.write_text("[hypervisor.qemu]\nconsole_log_size = 64\n")  # KiB
    flood = ("mknod /dev/con c 229 0 && echo FLOOD-START > /dev/con && "
             "while true; do cat /bin/busybox > /dev/con; done")
    caps = {k: ALL_CAPS for k in ("bounding", "effective", "permitted")}
    bundle = make_bundle(tmp_path / "b", ["sh", "-c", flood], process__capabilities=caps,
                         process__noNewPrivileges=False,
                         linux__resources__devices=[{"allow": True, "access": "rwm"}])
    box.run_detached("flood", bundle).check()
    console = box.root / "vms" / "flood" / "console.log"
    started = time.monotonic()
    sizes = []
    while time.monotonic() - started < 8:
        sizes.append(console.stat().st_size)
        time.sleep(0.25)
    assert max(sizes) <= 64 * 1024
    data = console.read_bytes()
    match = re.search(rb"\[strongbox: (\d+) bytes of output dropped here", data)
    assert match, data[:300]
    assert int(match.group(1)) > 1 << 20  # the flood was real: megabytes went by
    assert b"FLOOD-START" in data[:16 * 1024]  # the head is kept
    # The guest is still answering (the flood only slowed its console).
    assert box("state", "flood").check().json()["status"] == "running"
    qemu_log = box.root / "vms" / "flood" / "qemu.log"
    assert qemu_log.stat().st_size <= 64 * 1024
    assert wait_until(lambda: bool(qemu_pids(str(box.root))), 1)
