"""Factory makes a VM template once and clones every new sandbox from it.

A template is a VM booted to agent-ready with nothing container-specific in
it, paused, and saved: guest RAM in ``memory`` (a memory-backend file on
tmpfs, written with ``share=on``) and device state in ``state``. A clone is
QEMU started with ``-incoming``, mapping ``memory`` privately
(copy-on-write: clones share every page they do not write) and loading
``state``; ~40 ms instead of a boot. Afterwards the agent is told what must
differ per clone (hostname, wall clock, fresh entropy); shares and channels
are per-clone backends on the clone's own command line.

Layout (``[factory] template_path``, default /dev/shm/strongbox/template)::

    memory          guest RAM, sparse
    state           device state
    template.json   the inputs it was built from (kernel, initrd, VM shape,
                    QEMU), their hash, sizes, creation time

A template is used only when its inputs equal what a cold boot would use;
otherwise (stale, or missing) strongbox boots cold and says why, once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.errors import SandboxError, StateDirError
from strongbox.guest.assets import atomic_write, resolve_boot_assets
from strongbox.hypervisor.base import VMSpec
from strongbox.hypervisor.qemu.accel import choose
from strongbox.hypervisor.qemu.cmdline import BASE_KERNEL_PARAMS, TCG_KERNEL_PARAMS
from strongbox.hypervisor.qemu.driver import find_qemu
from strongbox.sandbox.rundir import RunDir
from strongbox.sandbox.shares import SHARE_TAG
from strongbox.sandbox.vm import GuestVM

log = logging.getLogger("strongbox.factory")

DEFAULT_PATH = Path("/dev/shm/strongbox/template")
#: Bump when what a template contains changes in a way clones would notice.
RECIPE = "template-1"
_warned: set[str] = set()


@dataclass(frozen=True)
class Inputs:
    """Everything a template's contents depend on; a clone must match all of it."""

    recipe: str
    kernel: str
    kernel_stamp: str
    initrd: str
    initrd_stamp: str
    qemu: str
    qemu_stamp: str
    accelerator: str
    memory_mib: int
    vcpus: int
    kernel_params: str

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def differences(self, other: Inputs) -> list[str]:
        mine, theirs = asdict(self), asdict(other)
        return [k.removesuffix("_stamp") for k in mine if mine[k] != theirs[k]]


def _stamp(path: Path) -> str:
    """A cheap identity for a file: size and modification time."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


@dataclass(frozen=True)
class Template:
    """A built template on disk."""

    path: Path
    inputs: Inputs
    created: float

    @property
    def memory_file(self) -> Path:
        return self.path / "memory"

    @property
    def state_file(self) -> Path:
        return self.path / "state"

    def describe(self) -> dict[str, Any]:
        mem = self.memory_file.stat()
        return {
            "path": str(self.path), "inputs_hash": self.inputs.digest(),
            "inputs": asdict(self.inputs), "created": self.created,
            "age_s": round(time.time() - self.created, 1),
            "memory_file_bytes": mem.st_size, "memory_resident_bytes": mem.st_blocks * 512,
            "state_file_bytes": self.state_file.stat().st_size,
        }


class Factory:
    """The VM template of one configuration."""

    def __init__(self, config: Config, state_dir: Path, root: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.root = root
        self.path = Path(config.factory.template_path) if config.factory.template_path \
            else DEFAULT_PATH

    # --- what a template must match -----------------------------------------------------
    def inputs(self, memory_mib: int | None = None, vcpus: int | None = None) -> Inputs:
        qemu = self.config.hypervisor.qemu
        kernel, initrd = resolve_boot_assets(self.state_dir, qemu.kernel, qemu.initrd)
        binary = Path(find_qemu(qemu.path))
        accel = choose(qemu.accelerator)
        params = list(BASE_KERNEL_PARAMS) + (list(TCG_KERNEL_PARAMS) if accel.name == "tcg"
                                             else []) + qemu.kernel_params.split()
        return Inputs(
            recipe=RECIPE, kernel=str(kernel), kernel_stamp=_stamp(kernel), initrd=str(initrd),
            initrd_stamp=_stamp(initrd), qemu=str(binary), qemu_stamp=_stamp(binary),
            accelerator=accel.name, memory_mib=memory_mib or qemu.default_memory,
            vcpus=vcpus or qemu.default_vcpus, kernel_params=" ".join(params),
        )

    def load(self) -> Template | None:
        try:
            data = json.loads((self.path / "template.json").read_text())
            template = Template(self.path, Inputs(**data["inputs"]), float(data["created"]))
        except (OSError, ValueError, TypeError, KeyError):
            return None
        if not template.memory_file.is_file() or not template.state_file.is_file():
            return None
        return template

    def clone_source(self, memory_mib: int, vcpus: int) -> Template | None:
        """The template to clone for a VM of this shape, or None (boot cold)."""
        template = self.load()
        if template is None:
            self._warn_once("missing", f"no VM template at {self.path}: booting cold "
                                       "(run `strongbox factory init`)")
            return None
        if (memory_mib, vcpus) != (template.inputs.memory_mib, template.inputs.vcpus):
            log.debug("VM of %d MiB / %d vCPU does not match the template: cold boot",
                      memory_mib, vcpus)
            return None
        wanted = self.inputs(memory_mib, vcpus)
        if wanted != template.inputs:
            changed = ", ".join(wanted.differences(template.inputs))
            self._warn_once("stale", f"VM template {self.path} is stale ({changed} changed): "
                                     "booting cold (run `strongbox factory init` to rebuild)")
            return None
        return template

    @staticmethod
    def _warn_once(key: str, message: str) -> None:
        if key not in _warned:
            _warned.add(key)
            log.warning("%s", message)

    # --- lifecycle ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path.parent / f".{self.path.name}.lock",
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateDirError(f"template path {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    async def init(self, progress: Any = None) -> Template:
        """Boot, pause and save a fresh template (replacing any old one)."""
        say = progress or (lambda message: None)
        inputs = self.inputs()
        with self._locked():
            building = self.path.with_name(f".{self.path.name}-{secrets.token_hex(4)}")
            building.mkdir(mode=0o700)
            try:
                say("booting the template VM")
                started = time.monotonic()
                await self._build(building, inputs)
                say(f"saved in {time.monotonic() - started:.1f}s")
                data = {"inputs": asdict(inputs), "inputs_hash": inputs.digest(),
                        "created": time.time()}
                atomic_write(building / "template.json", json.dumps(data, indent=2).encode())
                self._replace(building)
            except BaseException:
                shutil.rmtree(building, ignore_errors=True)
                raise
        template = self.load()
        assert template is not None
        return template

    async def _build(self, building: Path, inputs: Inputs) -> None:
        (building / "export").mkdir()
        run_dir = RunDir.create(self.root, f"template-{secrets.token_hex(4)}")
        state_fd = os.open(building / "state", os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                           | os.O_CLOEXEC, 0o600)
        vm: GuestVM | None = None
        try:
            spec = VMSpec(
                name=run_dir.path.name, kernel=Path(inputs.kernel), initrd=Path(inputs.initrd),
                memory_mib=inputs.memory_mib, vcpus=inputs.vcpus, run_dir=run_dir.path,
                kernel_params=tuple(self.config.hypervisor.qemu.kernel_params.split()),
                share_dir=building / "export", share_tag=SHARE_TAG,
                memory_file=building / "memory", memory_shared=True, state_fd=state_fd,
            )
            vm = GuestVM(self.config, spec, choose(inputs.accelerator))
            await vm.boot(self.config.agent.dial_timeout)
            await vm.call("warm_up")  # clones wake with the container library imported
            await vm.qemu.save_state()
            await vm.qemu.stop()
        finally:
            if vm is not None:
                await vm.destroy()
            os.close(state_fd)
            run_dir.remove()
        if (building / "state").stat().st_size == 0:
            raise SandboxError("saving the VM template wrote no device state")

    def _replace(self, building: Path) -> None:
        old = self.path.with_name(f".{self.path.name}-old-{secrets.token_hex(4)}")
        if self.path.exists():
            os.rename(self.path, old)
        os.rename(building, self.path)
        shutil.rmtree(old, ignore_errors=True)  # running clones keep their mappings

    def destroy(self) -> bool:
        with self._locked():
            if not self.path.exists():
                return False
            shutil.rmtree(self.path)
            return True

    def status(self) -> dict[str, Any]:
        template = self.load()
        if template is None:
            return {"path": str(self.path), "present": False}
        info = template.describe()
        try:
            current = self.inputs(template.inputs.memory_mib, template.inputs.vcpus)
            stale = current.differences(template.inputs)
        except Exception as exc:  # e.g. no guest assets any more
            stale = [f"unknown ({exc})"]
        return {"present": True, "fresh": not stale, "stale_because": stale, **info}
