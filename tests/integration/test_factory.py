"""VM templates: build, inspect, destroy; clones that are themselves; nothing leaks."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.framework import cli
from tests.framework.bundle import make_bundle
from tests.framework.procs import qemu_pids, wait_until

pytestmark = pytest.mark.vm


class Factory:
    """A private template (in /dev/shm) and the config that uses it."""

    def __init__(self, base: Path, root: Path) -> None:
        self.base = base
        self.root = root
        self.template = base / "template"
        self.config = base / "config.toml"
        self.write_config()
        self.n = 0

    def write_config(self, extra: str = "") -> None:
        self.config.write_text(f'[factory]\nenable_template = true\n'
                               f'template_path = "{self.template}"\n{extra}')

    def __call__(self, *args: str | Path, **kwargs: object) -> cli.Result:
        return cli.run("--config", self.config, "--root", self.root, *args,
                       **kwargs)  # type: ignore[arg-type]

    def bundle(self, args: list[str], **changes: object) -> Path:
        self.n += 1
        changes.setdefault("root__readonly", False)
        return make_bundle(self.base / f"b{self.n}", args, **changes)


@pytest.fixture
def factory(no_leaks: Path, guest_assets: dict[str, Path]) -> Iterator[Factory]:
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="sbx-fac-", dir="/dev/shm"))
    yield Factory(base, no_leaks)
    shutil.rmtree(base, ignore_errors=True)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_status_destroy(factory: Factory) -> None:
    assert factory("factory", "status", "--json").check().json()["present"] is False
    factory("factory", "init").check()
    status = factory("factory", "status", "--json").check().json()
    assert status["present"] and status["fresh"]
    assert status["path"] == str(factory.template)
    assert len(status["inputs_hash"]) == 64 and status["age_s"] >= 0
    assert status["inputs"]["memory_mib"] == 256 and status["inputs"]["vcpus"] == 1
    assert 0 < status["state_file_bytes"] < 1 << 20  # device state only, no RAM
    assert status["memory_file_bytes"] == 256 << 20
    assert 0 < status["memory_resident_bytes"] < status["memory_file_bytes"]
    human = factory("factory", "status").check().stdout
    assert "fresh" in human and "inputs" in human and "age" in human
    factory("factory", "destroy").check()
    assert not factory.template.exists()
    assert "no template" in factory("factory", "status").check().stdout


def test_clone_runs_fast_path_and_stale_template_is_rebuilt_on_first_use(factory: Factory
                                                                           ) -> None:
    factory("factory", "init").check()
    bundle = factory.bundle(["echo", "cloned"])
    run = factory("run", "--bundle", bundle, "fast1")
    assert run.stdout == "cloned\n" and "template" not in run.stderr
    made = factory("factory", "status", "--json").check().json()["created"]
    factory.write_config('[hypervisor.qemu]\nkernel_params = "quiet"\n')
    status = factory("factory", "status", "--json").check().json()
    assert status["fresh"] is False and "kernel_params" in status["stale_because"]
    stale = factory("--debug", "run", "--bundle", bundle, "stale1")
    assert stale.stdout == "cloned\n"
    assert "is stale (kernel_params changed): making it now" in stale.stderr
    assert "cloned in" in stale.stderr  # and the start that made it then cloned it
    status = factory("factory", "status", "--json").check().json()
    assert status["fresh"] is True and status["created"] > made
    assert "quiet" in status["inputs"]["kernel_params"]


def test_missing_template_is_made_by_the_first_start(factory: Factory) -> None:
    result = factory("--debug", "run", "--bundle", factory.bundle(["echo", "first"]), "first1")
    assert result.stdout == "first\n", result.stderr
    assert "is missing: making it now" in result.stderr and "cloned in" in result.stderr
    assert factory("factory", "status", "--json").check().json()["fresh"] is True


def test_concurrent_first_starts_make_one_template(factory: Factory) -> None:
    bundle = factory.bundle(["echo", "together"])
    procs = []
    for i in range(5):
        argv = cli.strongbox_argv("--config", factory.config, "--root", factory.root,
                                  "--debug", "run", "--bundle", bundle, f"first{i}")
        procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = [proc.communicate(timeout=240) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 5, [err for _, err in results]
    assert [out for out, _ in results] == ["together\n"] * 5
    errors = "".join(err for _, err in results)
    assert errors.count("making it now") == 1, errors
    assert errors.count("cloned in") == 5  # the others waited for it, then cloned
    assert factory("factory", "status", "--json").check().json()["fresh"] is True
    assert not [p for p in factory.template.parent.iterdir() if p.name.startswith(".template-")]


def test_clones_have_their_own_identity(factory: Factory) -> None:
    factory("factory", "init").check()
    # Sharing the guest's uts namespace shows the VM's own hostname.
    script = "hostname; date +%s; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'"
    bundle = factory.bundle(["sh", "-c", script],
                            linux__namespaces=[{"type": "pid"}, {"type": "mount"}],
                            hostname="")
    outputs = [factory("run", "--bundle", bundle, f"ident{i}").check().stdout.splitlines()
               for i in range(3)]
    hostnames = [o[0] for o in outputs]
    assert hostnames == ["ident0", "ident1", "ident2"]
    for out in outputs:
        assert abs(int(out[1]) - time.time()) < 30  # the clock was set, not the template's
    assert len({o[2] for o in outputs}) == 3  # different random bytes in every clone


def test_two_clones_side_by_side_do_not_share_writes(factory: Factory) -> None:
    factory("factory", "init").check()
    memory_before = _digest(factory.template / "memory")
    writer = factory.bundle(["sh", "-c", "echo secret > /dev/shm/mine; echo written; "
                                         "sleep 600"])
    reader = factory.bundle(["sh", "-c", "ls /dev/shm; cat /dev/shm/mine 2>&1; echo read"])
    argv = cli.strongbox_argv("--config", factory.config, "--root", factory.root, "run",
                              "--bundle", writer, "writer")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"written\n"
        out = factory("run", "--bundle", reader, "reader").check().stdout
        assert "No such file" in out and "secret" not in out
    finally:
        proc.kill()
        proc.wait()
    factory("delete", "--force", "writer")
    assert _digest(factory.template / "memory") == memory_before  # private copy-on-write


@pytest.mark.parametrize("victim", ["qemu", "owner"])
def test_kill_during_clone_start_leaks_nothing(factory: Factory, victim: str) -> None:
    factory("factory", "init").check()
    state_before = _digest(factory.template / "state")
    memory_before = _digest(factory.template / "memory")
    bundle = factory.bundle(["sleep", "600"])
    argv = cli.strongbox_argv("--config", factory.config, "--root", factory.root, "run",
                              "--bundle", bundle, f"victim-{victim}")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: bool(qemu_pids(str(factory.root))), 30)
        target = qemu_pids(str(factory.root))[0] if victim == "qemu" else proc.pid
        os.kill(target, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_until(lambda: not qemu_pids(str(factory.root)), 10)
    factory("delete", "--force", f"victim-{victim}")
    assert not list((factory.root / "vms").iterdir())
    assert _digest(factory.template / "state") == state_before
    assert _digest(factory.template / "memory") == memory_before
    assert factory("factory", "status", "--json").check().json()["fresh"] is True
    assert factory("run", "--bundle", factory.bundle(["echo", "ok"]), "after").stdout == "ok\n"
