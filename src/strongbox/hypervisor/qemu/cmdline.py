"""Cmdline builds QEMU's argument vector for a ``microvm`` guest.

Only what a sandbox needs: no default devices, no user config, no firmware
tables. The machine has no PCI and no ACPI; every device is virtio-mmio,
which QEMU announces on the kernel command line itself. (It keeps its RTC:
without one the guest kernel spends a full second polling for it at boot.) Guest channels
(QMP, the agent port, the console) are sockets QEMU inherits as file
descriptors, so no socket path exists anywhere on the host file system.
"""

from __future__ import annotations

from strongbox.hypervisor.base import VMSpec
from strongbox.hypervisor.qemu.accel import Accelerator

#: The guest kernel's command line before strongbox's and the user's extras.
BASE_KERNEL_PARAMS = (
    "console=hvc0",
    "panic=-1",  # a guest panic resets at once; with -no-reboot QEMU exits
    "reboot=t",  # microvm has no ACPI: power-off is a triple-fault reset
    "tsc=reliable",
    "no_timer_check",
    "rcupdate.rcu_expedited=1",  # boot waits on several RCU grace periods
)
#: QEMU's own seccomp filter, always on: no obsolete system calls, no set*id, no
#: fork/exec (so no ``exec:`` migration URI: templates use ``fd:``), no scheduler or
#: resource-limit changes. The jailer adds its chroot, namespaces, uid and cgroup.
SECCOMP = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
#: Only under emulation: calibrating the local APIC timer busy-waits 100 ms
#: of real time; the PIT (emulated cheaply by QEMU) drives the tick instead.
TCG_KERNEL_PARAMS = ("noapictimer",)


def kernel_command_line(spec: VMSpec, accel: Accelerator | None = None) -> str:
    params = list(BASE_KERNEL_PARAMS)
    if accel is not None and accel.name == "tcg":
        params.extend(TCG_KERNEL_PARAMS)
    params.append("loglevel=7" if spec.debug else "quiet")
    params.extend(spec.kernel_params)
    return " ".join(params)


def build_argv(qemu: str, spec: VMSpec, accel: Accelerator, *, qmp_fd: int, agent_fd: int,
               console_fd: int, tcg_tb_size_mib: int = 64) -> list[str]:
    """The full QEMU command line for ``spec``."""
    if accel.name == "kvm":
        accel_args = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel_args = ["-accel", f"tcg,thread=multi,tb-size={tcg_tb_size_mib}", "-cpu", "max"]
    machine = "microvm,acpi=off,x-option-roms=off,isa-serial=off"
    memory: list[str] = []
    if spec.memory_file is not None:
        # The same backend on both sides of a template: only share= differs.
        share = "on" if spec.memory_shared else "off"
        memory = ["-object", f"memory-backend-file,id=ram,size={spec.memory_mib}M,"
                             f"mem-path={spec.memory_file},share={share},prealloc=off"]
        machine += ",memory-backend=ram"
    incoming = ["-incoming", "defer"] if spec.incoming else []
    shares: list[str] = []
    if spec.share_dir is not None:
        shares = [
            "-fsdev", f"local,id=share,path={spec.share_dir},security_model=passthrough,"
                      "multidevs=remap",
            "-device", f"virtio-9p-device,fsdev=share,mount_tag={spec.share_tag}",
        ]
    nics: list[str] = []
    for index, nic in enumerate(spec.nics):
        vhost = "off" if nic.vhost_fd is None else f"on,vhostfd={nic.vhost_fd}"
        nics += ["-netdev", f"tap,id=net{index},fd={nic.tap_fd},vhost={vhost}",
                 "-device", f"virtio-net-device,netdev=net{index},mac={nic.mac}"]
    return [
        qemu,
        "-name", f"strongbox-{spec.name},debug-threads=on",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-sandbox", SECCOMP,
        "-S",  # the driver issues `cont` once QMP is up: boot time is measured from there
        "-machine", machine,
        *memory,
        *accel_args,
        "-m", f"{spec.memory_mib}M",
        "-smp", str(spec.vcpus),
        "-kernel", str(spec.kernel),
        "-initrd", str(spec.initrd),
        "-append", kernel_command_line(spec, accel),
        "-chardev", f"socket,id=qmp,fd={qmp_fd}",
        "-mon", "chardev=qmp,mode=control",
        "-object", "rng-random,id=rng0,filename=/dev/urandom",
        "-device", "virtio-rng-device,rng=rng0",
        "-device", "virtio-serial-device,max_ports=2",
        "-chardev", f"socket,id=console,fd={console_fd}",
        "-device", "virtconsole,chardev=console",
        "-chardev", f"socket,id=agent,fd={agent_fd}",
        "-device", f"virtserialport,chardev=agent,name={spec.agent_port}",
        *shares,
        *nics,
        *incoming,
    ]
