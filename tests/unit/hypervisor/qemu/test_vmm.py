"""QemuVMM turns ``[hypervisor.qemu]`` into the VMM interface the sandbox uses.

The sandbox never reads the QEMU section itself, so everything it needs from
it must come through here: the default shape, the guest it boots, whether
QEMU is jailed, and what a VM template depends on.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strongbox.config import parse_config
from strongbox.errors import ConfigError
from strongbox.hypervisor import open_vmm
from strongbox.hypervisor.base import VMShape
from strongbox.hypervisor.qemu.driver import QemuVM
from strongbox.hypervisor.qemu.vmm import QemuVMM


@pytest.fixture
def guest(tmp_path: Path) -> dict[str, str]:
    kernel, initrd = tmp_path / "vmlinux", tmp_path / "initrd.cpio"
    kernel.write_bytes(b"k")
    initrd.write_bytes(b"i")
    return {"kernel": str(kernel), "initrd": str(initrd), "accelerator": "tcg"}


def test_open_vmm_gives_qemu_configured_by_its_section(guest: dict[str, str],
                                                       tmp_path: Path) -> None:
    config = parse_config({"hypervisor": {"qemu": {**guest, "default_memory": 512,
                                                   "default_vcpus": 2, "memory_margin": 32,
                                                   "kernel_params": "foo=1 bar"}}})
    vmm = open_vmm(config, tmp_path)
    assert isinstance(vmm, QemuVMM) and vmm.name == "qemu"
    assert vmm.shape() == VMShape(default_memory_mib=512, default_vcpus=2,
                                  memory_margin_mib=32, max_vcpus=os.cpu_count() or 1)
    assert vmm.accelerator().name == "tcg"
    spec = vmm.vm_spec(name="vm1", run_dir=tmp_path / "run", memory_mib=300, vcpus=1,
                       share_dir=tmp_path / "shared")
    assert (str(spec.kernel), str(spec.initrd)) == (guest["kernel"], guest["initrd"])
    assert spec.kernel_params == ("foo=1", "bar") and spec.share_dir == tmp_path / "shared"
    assert (spec.memory_mib, spec.vcpus, spec.incoming) == (300, 1, False)


@pytest.mark.parametrize("jailer", [False, True])
def test_new_vm_is_jailed_when_configured(guest: dict[str, str], tmp_path: Path,
                                          jailer: bool) -> None:
    config = parse_config({"hypervisor": {"qemu": {**guest, "jailer": jailer,
                                                   "jailer_pids_max": 64}}})
    vmm = open_vmm(config, tmp_path)
    vm = vmm.new_vm(vmm.vm_spec(name="vm1", run_dir=tmp_path, memory_mib=256, vcpus=1))
    assert isinstance(vm, QemuVM)
    assert (vm.jail_policy is not None) == jailer
    if jailer:
        assert vm.jail_policy is not None and vm.jail_policy.pids_max == 64


def test_identity_names_everything_a_template_depends_on(guest: dict[str, str],
                                                         tmp_path: Path) -> None:
    vmm = open_vmm(parse_config({"hypervisor": {"qemu": {**guest, "path": "/bin/true"}}}),
                   tmp_path)
    identity = vmm.identity(256, 1)
    assert set(identity) == {"kernel", "kernel_stamp", "initrd", "initrd_stamp", "qemu",
                             "qemu_stamp", "accelerator", "memory_mib", "vcpus",
                             "kernel_params", "machine", "pcie_root_port"}
    assert "noapictimer" in identity["kernel_params"]  # TCG's own parameters count
    Path(guest["kernel"]).write_bytes(b"a new kernel")
    assert vmm.identity(256, 1)["kernel_stamp"] != identity["kernel_stamp"]


def test_guest_overrides_for_guest_boot(guest: dict[str, str], tmp_path: Path) -> None:
    config = parse_config({"hypervisor": {"qemu": guest}})
    other = tmp_path / "other-initrd"
    other.write_bytes(b"x")
    changed = config.with_guest(initrd=str(other), accelerator="auto")
    assert changed.hypervisor.qemu.initrd == str(other)
    assert changed.hypervisor.qemu.kernel == guest["kernel"]
    assert changed.hypervisor.qemu.accelerator == "auto"
    with pytest.raises(ConfigError, match="accelerator"):
        config.with_guest(accelerator="hvf")
