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

A template is used only when its inputs equal what a cold boot would use.
With ``enable_template`` on, a missing or stale template is made by the
first start that needs it (:meth:`Factory.template_for`), as Kata's factory
does; that start then clones it, and concurrent first starts wait for the
one being made. A VM of another shape boots cold.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongbox.atomicfile import atomic_write
from strongbox.config import Config
from strongbox.errors import SandboxError, StateDirError, StrongboxError
from strongbox.hypervisor import open_vmm
from strongbox.protocol import verbs
from strongbox.sandbox.network.slots import SandboxNetwork, slot_count
from strongbox.sandbox.rundir import RunDir
from strongbox.sandbox.shares import SHARE_TAG
from strongbox.sandbox.vm import GuestVM

log = logging.getLogger("strongbox.factory")

DEFAULT_PATH = Path("/dev/shm/strongbox/template")
#: Bump when what a template contains changes in a way clones would notice.
RECIPE = "template-6"  # 4: NIC slots; 5: their offloads (vnet_hdr taps); 6: hidden
_warned: set[str] = set()


def template_path(config: Config) -> Path:
    """Where the template of ``config`` lives (``[factory] template_path``, or the default)."""
    return Path(config.factory.template_path) if config.factory.template_path \
        else DEFAULT_PATH


@dataclass(frozen=True)
class Inputs:
    """Everything a template's contents depend on; a clone must match all of it.

    The recipe, and what the VMM names (:meth:`~strongbox.hypervisor.base.VMM.identity`:
    for QEMU its binary, kernel, initrd, command line, accelerator and the VM's size).
    """

    values: dict[str, Any]

    @classmethod
    def of(cls, identity: dict[str, Any]) -> Inputs:
        return cls({"recipe": RECIPE, **identity})

    @property
    def memory_mib(self) -> int:
        return int(self.values["memory_mib"])

    @property
    def vcpus(self) -> int:
        return int(self.values["vcpus"])

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.values, sort_keys=True).encode()).hexdigest()

    def differences(self, other: Inputs) -> list[str]:
        keys = list(self.values) + [k for k in other.values if k not in self.values]
        return [k.removesuffix("_stamp") for k in keys
                if self.values.get(k) != other.values.get(k)]


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
            "inputs": self.inputs.values, "created": self.created,
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
        self.path = template_path(config)
        self.vmm = open_vmm(config, state_dir)

    # --- what a template must match -----------------------------------------------------
    def inputs(self, memory_mib: int | None = None, vcpus: int | None = None) -> Inputs:
        shape = self.vmm.shape()
        return Inputs.of({**self.vmm.identity(memory_mib or shape.default_memory_mib,
                                              vcpus or shape.default_vcpus),
                          "nic_slots": slot_count(self.config.network)})

    def load(self) -> Template | None:
        try:
            data = json.loads((self.path / "template.json").read_text())
            inputs = data["inputs"]
            if not isinstance(inputs, dict):
                return None
            template = Template(self.path, Inputs(inputs), float(data["created"]))
        except (OSError, ValueError, TypeError, KeyError):
            return None
        if not template.memory_file.is_file() or not template.state_file.is_file():
            return None
        return template

    def _fresh(self, memory_mib: int, vcpus: int) -> tuple[Template | None, str]:
        """The template if it is fresh for this shape; else None and what is wrong."""
        template = self.load()
        if template is None:
            return None, "missing"
        wanted = self.inputs(memory_mib, vcpus)
        if wanted != template.inputs:
            return None, f"stale ({', '.join(wanted.differences(template.inputs))} changed)"
        return template, ""

    async def template_for(self, memory_mib: int, vcpus: int, *, wait: float = 120.0
                           ) -> Template | None:
        """The template a VM of this shape clones, made now if missing or stale (Kata's
        ``enable_template``); None means boot cold: another shape, or no template could
        be made (said once, as a warning).

        Concurrent first starts make one template: the first takes the factory's lock
        and builds, the others wait for the lock (up to ``wait`` s, else they boot
        cold) and then find the fresh template.
        """
        shape = self.vmm.shape()
        if (memory_mib, vcpus) != (shape.default_memory_mib, shape.default_vcpus):
            log.debug("VM of %d MiB / %d vCPU is not the template's shape: cold boot",
                      memory_mib, vcpus)
            return None
        template, why = self._fresh(memory_mib, vcpus)
        if template is not None:
            return template
        try:
            async with self._async_locked(wait):
                template, why = self._fresh(memory_mib, vcpus)
                if template is not None:
                    log.debug("VM template %s was made by another start meanwhile", self.path)
                    return template
                log.info("VM template %s is %s: making it now (first use)", self.path, why)
                started = time.monotonic()
                template = await self._make(self.inputs())
                log.info("VM template made in %.1fs", time.monotonic() - started)
                return template
        except TimeoutError:
            self._warn_once("busy", f"VM template {self.path} is being made by another "
                                    f"start for more than {wait:g}s: booting cold")
        except (StrongboxError, OSError) as exc:
            self._warn_once("failed", f"cannot make the VM template {self.path} ({why}): "
                                      f"{exc}: booting cold")
        return None

    @staticmethod
    def _warn_once(key: str, message: str) -> None:
        if key not in _warned:
            _warned.add(key)
            log.warning("%s", message)

    # --- lifecycle ----------------------------------------------------------------------
    def _lock_fd(self) -> int:
        """The factory's lock file beside the template, opened (not yet locked)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path.parent / f".{self.path.name}.lock",
                           os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateDirError(f"template path {self.path}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = self._lock_fd()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def _async_locked(self, wait: float) -> AsyncIterator[None]:
        """The factory's lock, taken without blocking the event loop; TimeoutError after
        ``wait`` seconds of someone else holding it."""
        fd = self._lock_fd()
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError from None
                    await asyncio.sleep(0.05)
            yield
        finally:
            os.close(fd)

    async def init(self, progress: Any = None) -> Template:
        """Boot, pause and save a fresh template (replacing any old one)."""
        inputs = self.inputs()
        with self._locked():
            return await self._make(inputs, progress)

    async def _make(self, inputs: Inputs, progress: Any = None) -> Template:
        """Build and install a template for ``inputs``; the caller holds the lock."""
        say = progress or (lambda message: None)
        building = self.path.with_name(f".{self.path.name}-{secrets.token_hex(4)}")
        building.mkdir(mode=0o700)
        try:
            say("booting the template VM")
            started = time.monotonic()
            await self._build(building, inputs)
            say(f"saved in {time.monotonic() - started:.1f}s")
            data = {"inputs": inputs.values, "inputs_hash": inputs.digest(),
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
        network: SandboxNetwork | None = None
        try:  # the template carries the NICs; its own taps live in a namespace of their own
            network = SandboxNetwork.open(self.config.network, sandbox_id=run_dir.path.name,
                                          netns=None, run_dir=None)
            spec = self.vmm.vm_spec(
                name=run_dir.path.name, run_dir=run_dir.path, memory_mib=inputs.memory_mib,
                vcpus=inputs.vcpus, share_dir=building / "export", share_tag=SHARE_TAG,
                memory_file=building / "memory", memory_shared=True, state_fd=state_fd,
                nics=network.nics(),
            )
            vm = GuestVM(self.vmm.new_vm(spec, network.enter),
                         request_timeout=self.config.agent.request_timeout)
            await vm.boot(self.config.agent.dial_timeout)
            network.handed_over()
            await vm.call(verbs.WARM_UP)  # clones wake with the container library imported
            if network.taps:  # and with every NIC slot hidden: nothing to do for no network
                await vm.call(verbs.CONFIGURE_NETWORK, network.hidden())
            await vm.vmm.save_state()
            await vm.vmm.stop()
        finally:
            if vm is not None:
                await vm.destroy()
            if network is not None:
                network.close()
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
