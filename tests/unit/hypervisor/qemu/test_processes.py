"""Which host process is a run directory's QEMU: by name and by the directory it uses, so
two roots' VMs of one name are never taken for each other."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from strongbox.hypervisor.qemu.processes import of_run_dirs


def test_the_qemu_of_each_root_is_its_own(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "vms" / "c1", tmp_path / "b" / "vms" / "c1"
    # a stand-in named like QEMU (argv[0]) with -name and a path of its run directory
    fake = tmp_path / "qemu-system-x86_64"
    fake.symlink_to(sys.executable)
    proc = subprocess.Popen([str(fake), "-c", "import time; time.sleep(30)", "-name",
                             "strongbox-c1,debug-threads=on", "-chardev", f"file,path={a}/x"])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not of_run_dirs([a]):
            time.sleep(0.05)
        assert of_run_dirs([a, b]) == {a: proc.pid}  # b's c1 is another VM
    finally:
        proc.kill()
        proc.wait()
    assert of_run_dirs([a]) == {}


def test_a_qemu_whose_run_directory_is_gone_is_an_orphan_and_gc_ends_it(tmp_path: Path
                                                                        ) -> None:
    from strongbox.sandbox import gc

    kept, gone = tmp_path / "vms" / "kept", tmp_path / "vms" / "gone"
    kept.mkdir(parents=True)
    fake = tmp_path / "qemu-system-x86_64"
    fake.symlink_to(sys.executable)
    procs = [subprocess.Popen([str(fake), "-c", "import time; time.sleep(30)", "-name",
                               f"strongbox-{d.name},debug-threads=on", "-chardev",
                               f"socket,id=c,path={d}/agent.sock"]) for d in (kept, gone)]
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(of_run_dirs([kept, gone])) < 2:
            time.sleep(0.05)
        orphans = [lo for lo in gc.orphan_qemus() if str(tmp_path) in lo.parts[0]]
        assert [lo.name for lo in orphans] == [str(procs[1].pid)], orphans
        assert gc.remove(orphans[0]) is True
        assert procs[1].wait(timeout=5) == -9
        assert procs[0].poll() is None  # the one with a run directory is someone's
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
