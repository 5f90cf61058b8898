"""``strongbox gc`` after crashes, through the real CLI and a real containerd: kill -9 of a
monitor, of a shim (containerd down, so its own clean-up cannot run) and of a QEMU, beside
a live sandbox. ``--dry-run`` lists exactly the dead sandboxes' remains and changes
nothing; ``gc`` removes them; the live sandbox keeps running."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.framework import cli
from tests.framework.bundle import make_bundle
from tests.framework.containerd import IMAGE, NAMESPACE, RUNTIME, ctr_daemon
from tests.framework.procs import qemu_pids, wait_until

pytestmark = pytest.mark.vm


def _gc(root: Path, *flags: str) -> dict[str, Any]:
    result = cli.run("--root", root, "gc", "--json", *flags, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout))


def _vm_qemu(root: Path, name: str) -> int:
    (pid,) = [p for p in qemu_pids(str(root)) if f"strongbox-{name},".encode()
              in Path(f"/proc/{p}/cmdline").read_bytes()]
    return pid


def _record(root: Path, cid: str) -> dict[str, Any]:
    return dict(json.loads((root / "containers" / cid / "state.json").read_text()))


def test_gc_lists_then_removes_what_three_crashes_left_and_spares_the_live(
        tmp_path: Path, guest_assets: dict[str, Path]) -> None:
    (tmp_path / "ctrd").mkdir()
    with ctr_daemon(tmp_path / "ctrd") as containerd:
        root = containerd.sbroot  # the shim's root: the CLI's containers share it
        for cid in ("gcmon", "gcqemu", "gclive"):
            bundle = make_bundle(tmp_path / cid, ["sleep", "600"])
            started = cli.run_to_files(cli.strongbox_argv("--root", root, "run", "-d",
                                                          "--bundle", bundle, cid),
                                       tmp_path / f"{cid}.out", tmp_path / f"{cid}.err")
            assert started.returncode == 0, started.stderr
        assert containerd.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, "gcshim", "sleep",
                              "600").returncode == 0
        shim_vm = f"{NAMESPACE}-gcshim"
        bundle = containerd.state / "io.containerd.runtime.v2.task" / NAMESPACE / "gcshim"
        shim_pid = int((bundle / "shim.pid").read_text())
        assert _gc(root, "--dry-run")["leftovers"] == []  # all alive: nothing

        os.kill(_record(root, "gcmon")["monitor_pid"], signal.SIGKILL)
        os.kill(_vm_qemu(root, "gcqemu"), signal.SIGKILL)
        containerd.stop()  # containerd would run the dead shim's clean-up itself
        os.kill(shim_pid, signal.SIGKILL)
        assert wait_until(lambda: sorted(str(p) for p in qemu_pids(str(root))) == [
            str(_vm_qemu(root, "gclive"))], 15)  # the dead owners' QEMUs went with them
        assert wait_until(lambda: _record(root, "gcqemu")["status"] == "stopped", 15)

        listed = _gc(root, "--dry-run")
        names = sorted((lo["kind"], lo["name"]) for lo in listed["leftovers"])
        assert names == [("container", "gcmon"), ("vm", "gcmon"), ("vm", shim_vm)], listed
        assert all(lo["removed"] is None for lo in listed["leftovers"])
        vm = next(lo for lo in listed["leftovers"] if lo["name"] == "gcmon" and lo["kind"] == "vm")
        assert vm["parts"][-1] == f"run directory {root / 'vms' / 'gcmon'}", vm
        assert (root / "vms" / "gcmon").is_dir() and (root / "vms" / shim_vm).is_dir()

        removed = _gc(root)
        assert sorted((lo["kind"], lo["name"]) for lo in removed["leftovers"]) == names
        assert all(lo["removed"] is True for lo in removed["leftovers"]), removed
        assert not (root / "vms" / "gcmon").exists() and not (root / "vms" / shim_vm).exists()
        assert not (root / "containers" / "gcmon").exists()
        assert _gc(root, "--dry-run")["leftovers"] == []

        # the QEMU killed under a live monitor left nothing for gc: its record waits for
        # delete, which works; the live sandbox runs on
        assert _record(root, "gcqemu")["status"] == "stopped"
        assert cli.run("--root", root, "delete", "gcqemu").returncode == 0
        state = cli.run("--root", root, "state", "gclive")
        assert json.loads(state.stdout)["status"] == "running", state.stdout
        assert cli.run("--root", root, "exec", "gclive", "true").returncode == 0
        assert cli.run("--root", root, "delete", "--force", "gclive").returncode == 0
        containerd.start()  # for the fixture's own clean-up of the dead shim's task
    text = cli.run("--root", root, "gc")
    assert text.returncode == 0 and text.stdout == "nothing to remove\n", text.stdout
