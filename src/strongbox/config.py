"""Config is the strongbox configuration file: what an operator may tune.

The file is TOML (``/etc/strongbox/config.toml`` unless ``--config`` or
``$STRONGBOX_CONFIG`` names another) with sections in the spirit of Kata's
``configuration.toml``::

    [hypervisor.qemu]   path, kernel, initrd, machine_type, default_vcpus,
                        default_memory, kernel_params, accelerator, jailer, ...
    [agent]             timeouts, debug console
    [runtime]           overlay, log level, state directory, host cgroup overheads
    [factory]           VM templates

Every key is optional. Unknown keys and wrong types are errors that name the
key, because a typo that silently falls back to a default is worse than a
refusal. A missing file at the default path means "all defaults"; a missing
file that was named explicitly is an error.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strongbox.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/strongbox/config.toml")
ACCELERATORS = ("auto", "kvm", "tcg")
MACHINE_TYPES = ("microvm", "q35")
#: How a block device reaches the guest, per machine type (StratoVirt's names).
BLOCK_DRIVERS = {"microvm": ("virtio-mmio",), "q35": ("virtio-blk",)}
#: Root ports a q35 guest may have (each one is a PCI slot of the root complex).
PCIE_ROOT_PORT_MAX = 16
LOG_LEVELS = ("debug", "info", "warning", "error")
NETWORK_MODELS = ("tcfilter", "none")
#: microvm has 8 virtio-mmio transports; rng, serial and 9p take three.
MAX_NIC_SLOTS = 4
#: A bound on the warm pool: each VM in it holds a QEMU and a keeper process (100 of them
#: take ~15 GiB here).
MAX_VM_CACHE = 128
#: A jailed uid is jailer_uid_base + [0, 65536) and must stay below (uid_t)-1.
JAILER_UID_BASE_MAX = 2**32 - 2 - 65536


@dataclass(frozen=True)
class QemuConfig:
    """``[hypervisor.qemu]``: how the VMM is found and how guests are shaped."""

    path: str = "qemu-system-x86_64"
    #: Guest kernel (uncompressed vmlinux); empty means the built asset.
    kernel: str = ""
    #: Guest initrd (uncompressed cpio); empty means the built asset.
    initrd: str = ""
    #: microvm: virtio-mmio, nothing hot-plugged. q35: the standard PC with PCIe, its
    #: devices on virtio-pci, ``pcie_root_port`` root ports for hotplug.
    machine_type: str = "microvm"
    #: Empty PCIe root ports on q35: each takes one hot-plugged device (a disk, a NIC).
    pcie_root_port: int = 0
    #: How block-device root file systems and volumes reach the guest: "virtio-blk"
    #: (q35) or "virtio-mmio" (microvm); empty means the machine type's one.
    block_device_driver: str = ""
    #: True: a block-device rootfs or volume travels over 9p like any directory.
    disable_block_device_use: bool = True
    default_vcpus: int = 1
    #: Guest RAM in MiB when the container sets no memory limit.
    default_memory: int = 256
    #: MiB added to a container's memory limit to size its VM (guest kernel,
    #: agent, page cache): the limit itself is enforced inside the guest.
    memory_margin: int = 64
    #: Appended to the kernel command line strongbox builds.
    kernel_params: str = ""
    #: auto: KVM when the host has hardware virtualisation, else TCG.
    accelerator: str = "auto"
    #: TCG translation cache in MiB: smaller means less host memory per VM.
    tcg_tb_size: int = 64
    #: Full kernel log on the guest console instead of ``quiet``.
    enable_debug: bool = False
    #: Confine QEMU: chroot, namespaces, own uid, cgroup (hypervisor/jailer). On by
    #: default; QEMU's own seccomp filter is on either way.
    jailer: bool = True
    #: Jailed QEMUs run as uid (= gid) jailer_uid_base + hash(sandbox id) mod 65536.
    jailer_uid_base: int = 100000
    #: Tasks (processes and threads) a jailed QEMU may have.
    jailer_pids_max: int = 128
    #: MiB a jailed QEMU may use beyond guest RAM (QEMU itself, TCG translation cache).
    jailer_memory_overhead: int = 384
    #: KiB each of a VM's console.log and qemu.log may hold (the head and the latest tail).
    console_log_size: int = 1024

    def validate(self) -> None:
        _choice("hypervisor.qemu.accelerator", self.accelerator, ACCELERATORS)
        _at_least("hypervisor.qemu.jailer_uid_base", self.jailer_uid_base, 1)
        _at_most("hypervisor.qemu.jailer_uid_base", self.jailer_uid_base, JAILER_UID_BASE_MAX)
        _at_least("hypervisor.qemu.jailer_pids_max", self.jailer_pids_max, 16)
        _at_least("hypervisor.qemu.jailer_memory_overhead", self.jailer_memory_overhead, 64)
        _at_least("hypervisor.qemu.default_vcpus", self.default_vcpus, 1)
        _at_least("hypervisor.qemu.default_memory", self.default_memory, 64)
        _at_least("hypervisor.qemu.memory_margin", self.memory_margin, 16)
        _at_least("hypervisor.qemu.tcg_tb_size", self.tcg_tb_size, 8)
        _at_least("hypervisor.qemu.console_log_size", self.console_log_size, 16)
        _choice("hypervisor.qemu.machine_type", self.machine_type, MACHINE_TYPES)
        _at_least("hypervisor.qemu.pcie_root_port", self.pcie_root_port, 0)
        _at_most("hypervisor.qemu.pcie_root_port", self.pcie_root_port, PCIE_ROOT_PORT_MAX)
        if self.pcie_root_port and self.machine_type != "q35":
            raise ConfigError("hypervisor.qemu.pcie_root_port: root ports need "
                              f"machine_type = 'q35', not {self.machine_type!r}")
        allowed = BLOCK_DRIVERS[self.machine_type]
        if self.block_device_driver and self.block_device_driver not in allowed:
            raise ConfigError(
                f"hypervisor.qemu.block_device_driver: machine_type {self.machine_type!r} "
                f"takes {' or '.join(map(repr, allowed))}, got {self.block_device_driver!r}")

    @property
    def block_driver(self) -> str:
        """The block driver in use: the configured one, else the machine type's."""
        return self.block_device_driver or BLOCK_DRIVERS[self.machine_type][0]


@dataclass(frozen=True)
class HypervisorConfig:
    """``[hypervisor]``: one table per VMM driver (only QEMU today)."""

    qemu: QemuConfig = field(default_factory=QemuConfig)


@dataclass(frozen=True)
class AgentConfig:
    """``[agent]``: how long the host waits for the guest agent."""

    #: Seconds from QEMU's start until the agent must have answered.
    dial_timeout: float = 30.0
    #: Seconds a single request may take before it is abandoned.
    request_timeout: float = 60.0
    #: Let ``strongbox debug console`` open a shell in the guest, outside the containers
    #: (Kata's debug_console_enabled): for debugging, never in production.
    debug_console: bool = False

    def validate(self) -> None:
        _positive("agent.dial_timeout", self.dial_timeout)
        _positive("agent.request_timeout", self.request_timeout)


@dataclass(frozen=True)
class RuntimeConfig:
    """``[runtime]``: behaviour of the runtime itself."""

    #: Share the rootfs read-only and keep writes in a guest tmpfs overlay.
    overlay: bool = False
    log_level: str = "warning"
    #: Where built guest assets and other persistent state live.
    state_dir: str = ""
    #: Whether QEMU's emulator threads (all but its vCPUs) count against the CPU of the
    #: cgroup ``linux.cgroupsPath`` names; False: they run in an overhead cgroup of their own
    #: (cgroup v1; v2 cannot split a process's threads across domains). sandbox/hostcgroup.py
    sandbox_cgroup_with_emulator: bool = False
    #: MiB the host cgroup allows beyond guest RAM: QEMU, its TCG cache and the owner.
    sandbox_cgroup_memory_overhead: int = 448
    #: Host tasks the host cgroup allows beyond the container's pids limit (QEMU's
    #: threads and the owner's).
    sandbox_cgroup_pids_overhead: int = 192

    def validate(self) -> None:
        _choice("runtime.log_level", self.log_level, LOG_LEVELS)
        _at_least("runtime.sandbox_cgroup_memory_overhead",
                  self.sandbox_cgroup_memory_overhead, 64)
        _at_least("runtime.sandbox_cgroup_pids_overhead", self.sandbox_cgroup_pids_overhead, 32)


@dataclass(frozen=True)
class NetworkConfig:
    """``[network]``: how the sandbox's network namespace reaches the guest (Kata's names)."""

    #: "tcfilter": each interface of the namespace gets a tap spliced to it by tc redirects
    #: and a virtio-net NIC with its MAC, addresses and routes; "none": the VM has lo only.
    internetworking_model: str = "tcfilter"
    #: Never use /dev/vhost-net, even where it opens (QEMU then moves every frame itself).
    disable_vhost_net: bool = True
    #: NICs every VM has (a microvm has no hotplug): the most interfaces a sandbox can have.
    nic_slots: int = 2
    #: Follow the namespace while containers run (Kata's netmon): an interface added later
    #: reaches the guest (a hot-plugged NIC on q35), one removed leaves it.
    enable_netmon: bool = True
    #: Where sandboxes may connect (CIDRs), enforced on the host side of each NIC; absent:
    #: anywhere. A container's ``io.strongbox.egress`` annotation may only narrow it.
    egress_allow: list[str] | None = None

    def validate(self) -> None:
        _choice("network.internetworking_model", self.internetworking_model, NETWORK_MODELS)
        if self.egress_allow is not None:
            import ipaddress

            if not isinstance(self.egress_allow, list):
                raise ConfigError("network.egress_allow: expected an array of CIDR strings")
            for value in self.egress_allow:
                try:
                    ipaddress.ip_network(str(value), strict=False)
                except ValueError:
                    raise ConfigError(f"network.egress_allow: {value!r} is not an IP network "
                                      "(CIDR)") from None
        if not 1 <= self.nic_slots <= MAX_NIC_SLOTS:
            raise ConfigError(f"network.nic_slots: expected 1..{MAX_NIC_SLOTS}, "
                              f"got {self.nic_slots}")


@dataclass(frozen=True)
class FactoryConfig:
    """``[factory]``: VM templates and the warm VM pool (Kata's names)."""

    enable_template: bool = False
    template_path: str = ""
    #: Warm VMs ``strongbox factory serve`` keeps running for starts to take (0: no pool).
    vm_cache_number: int = 0

    def validate(self) -> None:
        if not 0 <= self.vm_cache_number <= MAX_VM_CACHE:
            raise ConfigError(f"factory.vm_cache_number: expected 0..{MAX_VM_CACHE}, "
                              f"got {self.vm_cache_number}")


@dataclass(frozen=True)
class Config:
    """The whole configuration file."""

    hypervisor: HypervisorConfig = field(default_factory=HypervisorConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    factory: FactoryConfig = field(default_factory=FactoryConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)

    def validate(self) -> None:
        self.hypervisor.qemu.validate()
        self.agent.validate()
        self.runtime.validate()
        self.network.validate()
        self.factory.validate()

    def with_guest(self, *, kernel: str | None = None, initrd: str | None = None,
                   accelerator: str | None = None, machine_type: str | None = None) -> Config:
        """This configuration with another guest kernel, initrd, accelerator or machine type
        where given (``strongbox guest boot``'s flags)."""
        old = self.hypervisor.qemu
        qemu = dataclasses.replace(old, kernel=kernel or old.kernel, initrd=initrd or old.initrd,
                                   accelerator=accelerator or old.accelerator,
                                   machine_type=machine_type or old.machine_type)
        if qemu.machine_type != "q35":
            qemu = dataclasses.replace(qemu, pcie_root_port=0, block_device_driver="")
        qemu.validate()
        return dataclasses.replace(self, hypervisor=dataclasses.replace(self.hypervisor,
                                                                        qemu=qemu))


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the configuration file.

    ``path`` None means ``$STRONGBOX_CONFIG`` or the default path, and the
    default path may be absent; an explicitly named file must exist.
    """
    explicit = path is not None or "STRONGBOX_CONFIG" in os.environ
    where = Path(path if path is not None
                 else os.environ.get("STRONGBOX_CONFIG", DEFAULT_CONFIG_PATH))
    try:
        raw = where.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"config file {where}: no such file") from None
        return Config()
    except OSError as exc:
        raise ConfigError(f"config file {where}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {where}: invalid TOML: {exc}") from exc
    config = parse_config(data, source=str(where))
    return config


def parse_config(data: dict[str, Any], source: str = "config") -> Config:
    """Build a validated :class:`Config` from parsed TOML."""
    try:
        config: Config = _build(Config, data, "")
        config.validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def _build(cls: type[Any], data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'top level'}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        names = ", ".join(prefix + k for k in unknown)
        raise ConfigError(f"unknown key{'s' if len(unknown) > 1 else ''}: {names}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        key = prefix + name
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            values[name] = _build(hint, value, key + ".")
        else:
            values[name] = _coerce(key, hint, value)
    return cls(**values)


def _coerce(key: str, hint: Any, value: Any) -> Any:
    expected = hint if isinstance(hint, type) else None
    if isinstance(hint, types.UnionType):  # pragma: no cover - no optional keys yet
        expected = None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got a boolean")
    if expected is not None and not isinstance(value, expected):
        raise ConfigError(
            f"{key}: expected {_type_name(expected)}, got {_type_name(type(value))}"
        )
    return value


def _type_name(tp: type[Any]) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            dict: "a table", list: "an array"}.get(tp, tp.__name__)


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: expected one of {', '.join(allowed)}, got {value!r}")


def _at_least(key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ConfigError(f"{key}: expected at least {minimum}, got {value}")


def _at_most(key: str, value: int, maximum: int) -> None:
    if value > maximum:
        raise ConfigError(f"{key}: expected at most {maximum}, got {value}")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}: expected a positive number, got {value}")
