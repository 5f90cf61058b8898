"""Fixtures shared by every tier: temporary roots, the built guest, process checks."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from strongbox.guest.assets import AssetStore
from strongbox.runtime.paths import DEFAULT_STATE_DIR
from tests.framework.procs import qemu_pids, wait_until


@pytest.fixture
def root() -> Iterator[Path]:
    """A private ``--root`` for one test; fails the test if a QEMU of it survives."""
    with tempfile.TemporaryDirectory(prefix="sbx-") as tmp:
        path = Path(tmp)
        yield path
        survivors = qemu_pids(str(path))
        for pid in survivors:
            import os
            import signal

            os.kill(pid, signal.SIGKILL)
        assert not survivors, f"QEMU processes of this test survived: {survivors}"


@pytest.fixture(scope="session")
def guest_assets() -> dict[str, Path]:
    """The guest kernel and initrd `make setup` built (VM tests need them)."""
    current = AssetStore(DEFAULT_STATE_DIR).current()
    if set(current) != {"kernel", "initrd"}:
        pytest.fail(f"no guest assets in {DEFAULT_STATE_DIR}: run `make setup` first")
    return {kind: asset.path for kind, asset in current.items()}


@pytest.fixture
def no_leaks(root: Path) -> Iterator[Path]:
    """After the test: no QEMU of this root and no VM run directory left."""
    yield root
    assert wait_until(lambda: not qemu_pids(str(root)), timeout=5)
    vms = root / "vms"
    leftovers = sorted(p.name for p in vms.iterdir()) if vms.exists() else []
    assert not leftovers, f"run directories left behind: {leftovers}"


# --- VM templates: every VM test of run, cli, shim and podman runs cold and cloned ----------

#: QEMU is jailed by default; STRONGBOX_TEST_UNJAILED=1 runs those suites (cold and
#: cloned) with the jailer turned off, the opt-out an operator has.
UNJAILED = os.environ.get("STRONGBOX_TEST_UNJAILED") == "1"
JAILER_TOML = "[hypervisor.qemu]\njailer = false\n" if UNJAILED else ""


@pytest.fixture(scope="session")
def cold_config() -> Iterator[Path | None]:
    """The cold mode's config file: none, or one with the jailer off."""
    if not UNJAILED:
        yield None
        return
    import shutil

    base = Path(tempfile.mkdtemp(prefix="sbx-cold-", dir="/dev/shm"))
    (base / "config.toml").write_text(JAILER_TOML)
    yield base / "config.toml"
    shutil.rmtree(base, ignore_errors=True)


#: The q35 modes' machine: the standard PC with two PCIe root ports for hotplug.
Q35_TOML = 'machine_type = "q35"\npcie_root_port = 2\n'


def _hypervisor_toml(q35: bool) -> str:
    if not q35:
        return JAILER_TOML
    return "[hypervisor.qemu]\n" + ("jailer = false\n" if UNJAILED else "") + Q35_TOML


def _made_template(prefix: str, q35: bool = False) -> Iterator[Path]:
    """A config file with the factory on, and its template built once per session."""
    import shutil
    import subprocess
    import sys

    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/dev/shm"))
    config = base / "config.toml"
    config.write_text(f'{_hypervisor_toml(q35)}[factory]\nenable_template = true\n'
                      f'template_path = "{base}/template"\n')
    subprocess.run([sys.executable, "-m", "strongbox", "--config", str(config), "--root",
                    str(base / "root"), "factory", "init"], check=True, capture_output=True)
    yield config
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def template_config(guest_assets: dict[str, Path]) -> Iterator[Path]:
    """A config file with the factory on, and its template built once per session."""
    yield from _made_template("sbx-tpl-")


@pytest.fixture(scope="session")
def q35_config() -> Iterator[Path]:
    """The q35 mode's config: machine_type = "q35", cold boots."""
    import shutil

    base = Path(tempfile.mkdtemp(prefix="sbx-q35-", dir="/dev/shm"))
    (base / "config.toml").write_text(_hypervisor_toml(True))
    yield base / "config.toml"
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def q35_template_config(guest_assets: dict[str, Path]) -> Iterator[Path]:
    """q35 clones: a q35 template made once per session."""
    yield from _made_template("sbx-q35tpl-", q35=True)


@pytest.fixture(scope="session")
def pool_config(guest_assets: dict[str, Path]) -> Iterator[Path]:
    """A config with a warm pool of 2 VMs, and that pool running for the session."""
    import shutil

    from tests.framework.pool import WarmPool

    base = Path(tempfile.mkdtemp(prefix="sbx-pool-", dir="/dev/shm"))
    with WarmPool(base, size=2, extra=JAILER_TOML) as pool:
        yield pool.config
    shutil.rmtree(base, ignore_errors=True)


#: Modes that run a subset of each suite: the tests with that marker.
SUBSET_MODES = {"pool": "pool", "q35": "q35", "q35-template": "q35"}
#: Each mode's config fixture (the cold mode has its own rule).
MODE_CONFIGS = {"template": "template_config", "pool": "pool_config", "q35": "q35_config",
                "q35-template": "q35_template_config"}


@pytest.fixture(scope="module", params=["cold", "template", "pool", "q35", "q35-template"])
def factory_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a whole module cold, then as clones of a VM template, then the tests marked
    ``pool`` with VMs from a warm pool, and those marked ``q35`` on the q35 machine, cold
    and cloned.

    The configuration reaches every strongbox process (CLI, monitors, shims
    started by containerd, runtimes started by podman) through
    $STRONGBOX_CONFIG. Every mode jails QEMU (the default) unless STRONGBOX_TEST_UNJAILED=1.
    """

    previous = os.environ.get("STRONGBOX_CONFIG")
    if request.param in MODE_CONFIGS:
        os.environ["STRONGBOX_CONFIG"] = str(request.getfixturevalue(MODE_CONFIGS[request.param]))
    elif (cold := request.getfixturevalue("cold_config")) is not None:
        os.environ["STRONGBOX_CONFIG"] = str(cold)
    else:
        os.environ.pop("STRONGBOX_CONFIG", None)
    yield request.param
    if previous is None:
        os.environ.pop("STRONGBOX_CONFIG", None)
    else:
        os.environ["STRONGBOX_CONFIG"] = previous


def _mode(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return str(callspec.params.get("factory_mode", "")) if callspec is not None else ""


def _pool_mode(item: pytest.Item) -> bool:
    return _mode(item) == "pool"


def _outside_subset(item: pytest.Item) -> bool:
    marker = SUBSET_MODES.get(_mode(item))
    return marker is not None and item.get_closest_marker(marker) is None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The pool and q35 modes run only the tests marked ``pool`` or ``q35`` (each suite's
    representative flows): running every suite in every mode would not fit CI's time."""
    dropped = [i for i in items if _outside_subset(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if not _outside_subset(i)]


@pytest.fixture(autouse=True)
def _pooled_vm_used(request: pytest.FixtureRequest) -> Iterator[None]:
    """In the pool mode: a warm VM is free before the test, and the test took one."""
    if not _pool_mode(request.node):
        yield
        return
    from tests.framework.pool import pool_status

    config = request.getfixturevalue("pool_config")
    assert wait_until(lambda: pool_status(config)["free"] >= 1, 120), "the pool did not refill"
    before = pool_status(config)
    yield
    after = pool_status(config)
    assert after["claims"] - after["misses"] > before["claims"] - before["misses"], \
        f"the test took no VM from the pool: {before} -> {after}"
