"""The QEMU command line for a guest on microvm and on q35."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from strongbox.hypervisor.base import NicSpec, VMSpec
from strongbox.hypervisor.qemu.accel import Accelerator
from strongbox.hypervisor.qemu.cmdline import SECCOMP, build_argv, kernel_command_line
from strongbox.hypervisor.qemu.machine import Machine

SPEC = VMSpec(name="t1", kernel=Path("/k"), initrd=Path("/i"), memory_mib=300, vcpus=2,
              run_dir=Path("/run/x"), kernel_params=("foo=bar",))
TCG = Accelerator("tcg", "test")
KVM = Accelerator("kvm", "test")


def _opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_microvm_essentials() -> None:
    argv = build_argv("/usr/bin/qemu", SPEC, TCG, qmp_fd=7, agent_fd=8, console_fd=9,
                      tcg_tb_size_mib=32)
    assert argv[0] == "/usr/bin/qemu"
    for flag in ("-nodefaults", "-no-user-config", "-no-reboot"):
        assert flag in argv
    assert _opt(argv, "-machine")[0].startswith("microvm,acpi=off")
    assert _opt(argv, "-m") == ["300M"] and _opt(argv, "-smp") == ["2"]
    assert _opt(argv, "-kernel") == ["/k"] and _opt(argv, "-initrd") == ["/i"]
    assert _opt(argv, "-accel") == ["tcg,thread=multi,tb-size=32"]
    devices = _opt(argv, "-device")
    assert "virtio-rng-device,rng=rng0" in devices
    assert "virtserialport,chardev=agent,name=strongbox.agent" in devices
    chardevs = _opt(argv, "-chardev")
    assert "socket,id=qmp,fd=7" in chardevs and "socket,id=agent,fd=8" in chardevs
    # QEMU writes no host file the guest can grow: the console is a socket we read.
    assert "socket,id=console,fd=9" in chardevs
    assert not [c for c in chardevs if c.startswith("file,")]


def test_seccomp_filter_is_always_on() -> None:
    for accel in (TCG, KVM):
        argv = build_argv("qemu", SPEC, accel, qmp_fd=3, agent_fd=4, console_fd=5)
        assert _opt(argv, "-sandbox") == [SECCOMP]
    for option in ("on", "obsolete=deny", "elevateprivileges=deny", "spawn=deny",
                   "resourcecontrol=deny"):
        assert option in SECCOMP.split(",")


def test_kvm_uses_host_cpu() -> None:
    argv = build_argv("qemu", SPEC, KVM, qmp_fd=3, agent_fd=4, console_fd=5)
    assert _opt(argv, "-accel") == ["kvm"] and _opt(argv, "-cpu") == ["host"]
    assert "noapictimer" not in kernel_command_line(SPEC, KVM)


def test_kernel_command_line() -> None:
    line = kernel_command_line(SPEC, TCG)
    assert "console=hvc0" in line and "reboot=t" in line and "panic=-1" in line
    assert "pci=off" in line and "acpi=off" in line  # microvm: nothing to probe
    assert "quiet" in line and line.endswith("foo=bar")
    assert "noapictimer" in line
    debug = VMSpec(**{**SPEC.__dict__, "debug": True})
    assert "quiet" not in kernel_command_line(debug, TCG)


def test_each_nic_slot_is_a_virtio_net_device_on_an_inherited_tap() -> None:
    spec = dataclasses.replace(SPEC, nics=(NicSpec(20, "02:73:62:00:00:00"),
                                           NicSpec(21, "02:73:62:00:00:01", vhost_fd=22)))
    argv = build_argv("qemu", spec, TCG, qmp_fd=3, agent_fd=4, console_fd=5)
    assert _opt(argv, "-netdev") == ["tap,id=net0,fd=20,vhost=off",
                                     "tap,id=net1,fd=21,vhost=on,vhostfd=22"]
    nics = [d for d in _opt(argv, "-device") if d.startswith("virtio-net-device")]
    assert nics == ["virtio-net-device,netdev=net0,mac=02:73:62:00:00:00",
                    "virtio-net-device,netdev=net1,mac=02:73:62:00:00:01"]
    assert not _opt(build_argv("qemu", SPEC, TCG, qmp_fd=3, agent_fd=4, console_fd=5),
                    "-netdev")


def test_q35_puts_the_same_devices_on_pci_and_adds_empty_root_ports() -> None:
    q35 = Machine("q35", root_ports=2)
    spec = dataclasses.replace(SPEC, nics=(NicSpec(20, "02:73:62:00:00:00"),),
                               share_dir=Path("/s"))
    argv = build_argv("qemu", spec, TCG, qmp_fd=3, agent_fd=4, console_fd=5, machine=q35)
    assert _opt(argv, "-machine")[0].startswith("q35,")
    devices = _opt(argv, "-device")
    kinds = [d.split(",")[0] for d in devices]
    for kind in ("virtio-rng-pci", "virtio-serial-pci", "virtio-9p-pci", "virtio-net-pci"):
        assert kind in kinds
    assert not [k for k in kinds if k.endswith("-device")]  # nothing on virtio-mmio
    assert all("disable-legacy=on" in d for d in devices if d.startswith("virtio-"))
    ports = [d for d in devices if d.startswith("pcie-root-port")]
    assert len(ports) == 2 and len({p.split("chassis=")[1] for p in ports}) == 2
    assert "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off" in _opt(argv, "-global")
    line = kernel_command_line(spec, TCG, q35)
    assert "pci=off" not in line and "acpi=off" not in line and "reboot=t" not in line


def test_q35_template_memory_backend_stays_on_the_board() -> None:
    spec = dataclasses.replace(SPEC, memory_file=Path("/t/mem"))
    argv = build_argv("qemu", spec, TCG, qmp_fd=3, agent_fd=4, console_fd=5,
                      machine=Machine("q35"))
    assert _opt(argv, "-machine")[0].endswith(",memory-backend=ram")
    assert not [d for d in _opt(argv, "-device") if d.startswith("pcie-root-port")]
