"""Cmdline builds QEMU's argument vector for a guest on either machine type.

Only what a sandbox needs: no default devices, no user config. What differs
between ``microvm`` (virtio-mmio, no PCI, no ACPI) and ``q35`` (virtio-pci,
root ports for hotplug) is :class:`~.machine.Machine`'s; the devices are the
same virtio set on both. (microvm keeps its RTC: without one the guest kernel
spends a full second polling for it at boot.) Guest channels (QMP, the agent
port, the console) are sockets QEMU inherits as file descriptors, so no
socket path exists anywhere on the host file system.
"""

from __future__ import annotations

import os
import stat

from strongbox.hypervisor.base import DiskSpec, VMSpec
from strongbox.hypervisor.qemu.accel import Accelerator
from strongbox.hypervisor.qemu.machine import Machine

MICROVM = Machine("microvm")

#: The guest kernel's command line before strongbox's and the user's extras.
BASE_KERNEL_PARAMS = (
    "console=hvc0",
    "panic=-1",  # a guest panic resets at once; with -no-reboot QEMU exits
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


def kernel_command_line(spec: VMSpec, accel: Accelerator | None = None,
                        machine: Machine = MICROVM) -> str:
    params = [*BASE_KERNEL_PARAMS, *machine.kernel_params()]
    if accel is not None and accel.name == "tcg":
        params.extend(TCG_KERNEL_PARAMS)
    params.append("loglevel=7" if spec.debug else "quiet")
    params.extend(spec.kernel_params)
    return " ".join(params)


def build_argv(qemu: str, spec: VMSpec, accel: Accelerator, *, qmp_fd: int, agent_fd: int,
               console_fd: int, tcg_tb_size_mib: int = 64,
               machine: Machine = MICROVM) -> list[str]:
    """The full QEMU command line for ``spec`` on ``machine``."""
    if accel.name == "kvm":
        accel_args = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel_args = ["-accel", f"tcg,thread=multi,tb-size={tcg_tb_size_mib}", "-cpu", "max"]
    board = machine.board()
    memory: list[str] = []
    if spec.memory_file is not None:
        # The same backend on both sides of a template: only share= differs.
        share = "on" if spec.memory_shared else "off"
        memory = ["-object", f"memory-backend-file,id=ram,size={spec.memory_mib}M,"
                             f"mem-path={spec.memory_file},share={share},prealloc=off"]
        board += ",memory-backend=ram"
    incoming = ["-incoming", "defer"] if spec.incoming else []
    shares: list[str] = []
    if spec.share_dir is not None:
        shares = [
            "-fsdev", f"local,id=share,path={spec.share_dir},security_model=passthrough,"
                      "multidevs=remap",
            "-device", machine.device("9p", f"fsdev=share,mount_tag={spec.share_tag}"),
        ]
    nics: list[str] = []
    for index, nic in enumerate(spec.nics):
        vhost = "off" if nic.vhost_fd is None else f"on,vhostfd={nic.vhost_fd}"
        nics += ["-netdev", f"tap,id=net{index},fd={nic.tap_fd},vhost={vhost}",
                 "-device", machine.device("net", f"netdev=net{index},mac={nic.mac}")]
    disks: list[str] = []
    for index, disk in enumerate(spec.disks):
        disks += disk_args(machine, disk, f"disk{index}", fdset=index + 1)
    return [
        qemu,
        "-name", f"strongbox-{spec.name},debug-threads=on",
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-sandbox", SECCOMP,
        "-S",  # the driver issues `cont` once QMP is up: boot time is measured from there
        "-machine", board,
        *machine.board_args(),
        *memory,
        *accel_args,
        "-m", f"{spec.memory_mib}M",
        "-smp", str(spec.vcpus),
        "-kernel", str(spec.kernel),
        "-initrd", str(spec.initrd),
        "-append", kernel_command_line(spec, accel, machine),
        "-chardev", f"socket,id=qmp,fd={qmp_fd}",
        "-mon", "chardev=qmp,mode=control",
        "-object", "rng-random,id=rng0,filename=/dev/urandom",
        "-device", machine.device("rng", "rng=rng0"),
        "-device", machine.device("serial", "max_ports=2"),
        "-chardev", f"socket,id=console,fd={console_fd}",
        "-device", "virtconsole,chardev=console",
        "-chardev", f"socket,id=agent,fd={agent_fd}",
        "-device", f"virtserialport,chardev=agent,name={spec.agent_port}",
        *shares,
        *nics,
        *disks,
        *incoming,
    ]


def block_driver(disk: DiskSpec) -> str:
    """QEMU's protocol driver for the descriptor: a block device, or a file (an image)."""
    try:
        return "file" if stat.S_ISREG(os.fstat(disk.fd).st_mode) else "host_device"
    except OSError:
        return "host_device"


def disk_args(machine: Machine, disk: DiskSpec, node: str, fdset: int) -> list[str]:
    """A block device QEMU reaches only through the descriptor it inherited (an fd set:
    it never opens a host path, jailed or not), as virtio-blk with the disk's serial."""
    readonly = "on" if disk.readonly else "off"
    return ["-add-fd", f"fd={disk.fd},set={fdset}",
            "-blockdev", f"driver={block_driver(disk)},node-name={node},"
                         f"filename=/dev/fdset/{fdset},"
                         f"read-only={readonly},cache.direct=off,discard=unmap",
            "-device", machine.device("blk", f"drive={node},serial={disk.serial}")]
