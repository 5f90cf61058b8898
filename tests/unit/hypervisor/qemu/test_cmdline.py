"""The QEMU command line for a microvm guest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from strongbox.hypervisor.base import NicSpec, VMSpec
from strongbox.hypervisor.qemu.accel import Accelerator
from strongbox.hypervisor.qemu.cmdline import SECCOMP, build_argv, kernel_command_line

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
