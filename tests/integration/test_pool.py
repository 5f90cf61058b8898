"""The warm VM pool: hand-over, no reuse across tenants, refills, and kill -9 of anyone.

The pool runs for real (``strongbox factory serve``, its keepers, QEMU under
TCG) on a template and root of its own. The flows of the run, CLI, podman
and containerd suites also run against a pool (their tests marked ``pool``);
this module owns what only a pool has: who owns a VM when something dies.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongbox.config import load_config
from strongbox.hypervisor import open_vmm
from strongbox.runtime.paths import DEFAULT_STATE_DIR
from strongbox.sandbox.pool.take import claim, pool_key
from tests.framework import cli
from tests.framework.bundle import make_bundle
from tests.framework.pool import WarmPool, keepers
from tests.framework.procs import pids_with_cmdline, wait_until

pytestmark = pytest.mark.vm
LOOP = ["sh", "-c", "while true; do sleep 1; done"]


@pytest.fixture(scope="module")
def pool(guest_assets: dict[str, Path]) -> Iterator[WarmPool]:
    import shutil

    from tests.conftest import JAILER_TOML

    base = Path(tempfile.mkdtemp(prefix="sbx-wp-", dir="/dev/shm"))
    with WarmPool(base, size=2, extra=JAILER_TOML) as warm:
        yield warm
    assert wait_until(lambda: not keepers(warm.root), 20), "keepers outlived the pool"
    shutil.rmtree(base, ignore_errors=True)


class Tenant:
    """The CLI with the pool's config and a private root."""

    def __init__(self, pool: WarmPool, root: Path, tmp: Path) -> None:
        self.pool, self.root, self.tmp, self.n = pool, root, tmp, 0
        self.vms: dict[str, str] = {}

    def __call__(self, *args: str | Path, config: Path | None = None) -> cli.Result:
        return cli.run("--config", config or self.pool.config, "--root", self.root, *args)

    def bundle(self, args: list[str]) -> Path:
        self.n += 1
        return make_bundle(self.tmp / f"b{self.n}", args, root__readonly=False)

    def create(self, cid: str, args: list[str] = LOOP) -> int:
        """A created container (detached monitor); its monitor's pid."""
        pid_file = self.tmp / f"{cid}.pid"
        argv = cli.strongbox_argv("--config", self.pool.config, "--root", self.root,
                                  "create", "--bundle", self.bundle(args), "--pid-file",
                                  pid_file, cid)
        before = set(self.pool.status()["in_use_vms"])
        cli.run_to_files(argv, self.tmp / f"{cid}.out", self.tmp / f"{cid}.err").check()
        got = set(self.pool.status()["in_use_vms"]) - before
        assert len(got) == 1, f"{cid} did not get one pooled VM: {got}"
        self.vms[cid] = got.pop()
        return int(pid_file.read_text())


@pytest.fixture
def tenant(pool: WarmPool, no_leaks: Path, tmp_path: Path) -> Iterator[Tenant]:
    if pool.process is None:  # a test killed it
        pool.start()
    assert wait_until(lambda: pool.status()["free"] == pool.size, 120), "the pool did not refill"
    tenant = Tenant(pool, no_leaks, tmp_path)
    yield tenant
    for cid in tenant.vms:  # a failed test's containers: their VMs must not outlive it
        tenant("delete", "--force", cid)
    assert wait_until(lambda: all(gone(pool, vm) for vm in tenant.vms.values()), 15)


def gone(pool: WarmPool, vm: str) -> bool:
    """Nothing of pooled VM ``vm`` is left: keeper, QEMU, run directory."""
    alive = pids_with_cmdline("strongbox.sandbox.pool.keeper", str(pool.root), f"--name\0{vm}\0")
    qemus = [p for p in pids_with_cmdline(f"strongbox-{vm},")]
    return not alive and not qemus and not (pool.root / "vms" / vm).exists()


def qemu_of(vm: str) -> int:
    (pid,) = pids_with_cmdline(f"strongbox-{vm},", "qemu-system")
    return pid


def test_run_takes_a_warm_vm_that_ends_with_its_container(tenant: Tenant) -> None:
    result = tenant("--debug", "run", "--bundle", tenant.bundle(["sh", "-c", "echo hi; hostname"]),
                    "r1").check()
    assert result.stdout.splitlines()[0] == "hi"
    vm = result.stderr.split("VM from the warm pool (")[1].split(")")[0]
    assert wait_until(lambda: gone(tenant.pool, vm), 15), f"{vm} outlived its container"
    status = tenant.pool.status()
    assert vm not in status["free_vms"]  # never back in the pool
    assert wait_until(lambda: tenant.pool.status()["free"] == 2, 120)
    assert vm not in tenant.pool.status()["free_vms"]


def test_a_vm_is_handed_out_once_and_a_burst_is_refilled(tenant: Tenant) -> None:
    """Three claims at once on a pool of two: two distinct VMs, one "none"."""
    config = load_config(tenant.pool.config)
    vmm = open_vmm(config, DEFAULT_STATE_DIR)
    key = pool_key(config, vmm, vmm.shape().default_memory_mib, vmm.shape().default_vcpus)

    async def burst() -> list[socket.socket | str]:
        return list(await asyncio.gather(*(claim(config, f"c{i}", key) for i in range(3))))

    got = asyncio.run(burst())
    socks = [g for g in got if isinstance(g, socket.socket)]
    assert len(socks) == 2 and len([g for g in got if isinstance(g, str)]) == 1, got
    in_use = tenant.pool.status()["in_use_vms"]
    assert len(in_use) == 2
    for sock in socks:
        sock.close()  # the release: each keeper removes its VM
    assert wait_until(lambda: all(gone(tenant.pool, vm) for vm in in_use), 20)
    assert wait_until(lambda: tenant.pool.status()["free"] == 2, 120), "no refill after a burst"
    status = tenant.pool.status()
    assert not set(status["free_vms"]) & set(in_use) and status["made"] >= 4


def test_pool_off_starts_as_before(tenant: Tenant) -> None:
    """vm_cache_number = 0 (the same template, the pool running): no claim at all."""
    off = tenant.tmp / "off.toml"
    off.write_text(tenant.pool.config.read_text().replace("vm_cache_number = 2",
                                                          "vm_cache_number = 0"))
    before = tenant.pool.status()["claims"]
    result = tenant("--debug", "run", "--bundle", tenant.bundle(["true"]), "off1",
                    config=off).check()
    assert "warm pool: off" in result.stderr and "VM from the warm pool" not in result.stderr
    assert tenant.pool.status()["claims"] == before


def test_sigkill_of_the_pool_spares_handed_out_vms(tenant: Tenant) -> None:
    tenant.create("kp")
    vm = tenant.vms["kp"]
    tenant("start", "kp").check()
    free = tenant.pool.status()["free_vms"]
    tenant.pool.stop(signal.SIGKILL)
    assert wait_until(lambda: all(gone(tenant.pool, f) for f in free), 20), \
        "free VMs outlived the pool"
    assert not gone(tenant.pool, vm)
    assert tenant("exec", "kp", "echo", "still here").check().stdout == "still here\n"
    tenant("delete", "--force", "kp").check()
    assert wait_until(lambda: gone(tenant.pool, vm), 15)


def test_sigkill_of_a_monitor_ends_only_its_vm(tenant: Tenant) -> None:
    monitor = tenant.create("km")
    vm = tenant.vms["km"]
    free = tenant.pool.status()["free_vms"]
    os.kill(monitor, signal.SIGKILL)
    assert wait_until(lambda: gone(tenant.pool, vm), 15), "the VM outlived its owner"
    assert tenant("state", "km").check().json()["status"] == "stopped"
    assert all(f in tenant.pool.status()["free_vms"] for f in free)  # others untouched
    tenant("delete", "km").check()


@pytest.mark.parametrize("whose", ["free", "claimed"])
def test_sigkill_of_a_pooled_qemu(tenant: Tenant, whose: str) -> None:
    if whose == "free":
        vm = tenant.pool.status()["free_vms"][0]
        os.kill(qemu_of(vm), signal.SIGKILL)
        assert wait_until(lambda: gone(tenant.pool, vm), 15)
        assert wait_until(lambda: tenant.pool.status()["free"] == 2, 120)
        assert vm not in tenant.pool.status()["free_vms"]
        return
    tenant.create("kq")
    vm = tenant.vms["kq"]
    tenant("start", "kq").check()
    os.kill(qemu_of(vm), signal.SIGKILL)
    assert wait_until(lambda: tenant("state", "kq").json()["status"] == "stopped", 15)
    tenant("delete", "kq").check()
    assert wait_until(lambda: gone(tenant.pool, vm), 15)


def test_status_shows_the_pool(tenant: Tenant) -> None:
    human = tenant("factory", "status").check().stdout
    assert "2 free of 2" in human and "refill" in human
    elsewhere = tenant.tmp / "elsewhere.toml"
    elsewhere.write_text(f'[factory]\ntemplate_path = "{tenant.tmp}/t/template"\n')
    assert "not running" in tenant("factory", "status", config=elsewhere).check().stdout


def test_a_q35_pool_hands_out_q35_vms(no_leaks: Path, tmp_path: Path,
                                      guest_assets: dict[str, Path]) -> None:
    """The pool works on the standard machine too: its VMs are q35 clones, and a start
    takes one (a pooled VM's devices are its command line's: no hotplug through it)."""
    import shutil

    from tests.conftest import JAILER_TOML, Q35_TOML

    base = Path(tempfile.mkdtemp(prefix="sbx-wpq-", dir="/dev/shm"))
    hypervisor = ("[hypervisor.qemu]\n" + JAILER_TOML.split("\n", 1)[-1] + Q35_TOML)
    try:
        with WarmPool(base, size=1, extra=hypervisor) as warm:
            bundle = make_bundle(tmp_path / "b", ["sh", "-c", "cat /sys/bus/pci/devices/*/vendor"])
            before = warm.status()
            result = cli.run("--config", warm.config, "--root", no_leaks, "run", "--bundle",
                             bundle, "q35p")
            assert result.returncode == 0, result.stderr
            assert "0x1af4" in result.stdout  # virtio on PCI: a q35 guest
            after = warm.status()
            assert after["claims"] - after["misses"] == before["claims"] - before["misses"] + 1
        assert wait_until(lambda: not keepers(warm.root), 20)
    finally:
        shutil.rmtree(base, ignore_errors=True)
