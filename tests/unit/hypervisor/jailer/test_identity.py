"""Who a jailed QEMU is: uid from the sandbox id, groups, the capability masks, its argv."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from strongbox.config import parse_config
from strongbox.errors import ConfigError
from strongbox.hypervisor.base import VMSpec
from strongbox.hypervisor.jailer import JailPolicy
from strongbox.hypervisor.jailer.confine import bind_flags
from strongbox.hypervisor.jailer.identity import (
    QEMU_CAPABILITIES,
    UID_RANGE,
    Identity,
    capabilities_to_drop,
    capability_mask,
    uid_for,
)
from strongbox.hypervisor.jailer.layout import Bind
from strongbox.hypervisor.qemu.accel import Accelerator
from strongbox.hypervisor.qemu.driver import QemuVM


def test_uid_is_stable_and_in_range() -> None:
    assert uid_for("box", 100000) == uid_for("box", 100000)
    uids = {uid_for(f"sandbox-{n}", 100000) for n in range(200)}
    assert all(100000 <= uid < 100000 + UID_RANGE for uid in uids)
    assert len(uids) > 190  # spread out, collisions are rare
    assert uid_for("box", 200000) - uid_for("box", 100000) == 100000


def test_uid_is_documented_formula() -> None:
    # Part of the contract: an operator (or a cleanup) can recompute it from the id.
    digest = hashlib.sha256(b"box").digest()
    assert uid_for("box", 100000) == 100000 + int.from_bytes(digest[:8], "big") % 65536


def test_capabilities_are_the_four_9p_needs() -> None:
    # CAP_CHOWN 0, CAP_DAC_OVERRIDE 1, CAP_FOWNER 3, CAP_FSETID 4
    assert QEMU_CAPABILITIES == (0, 1, 3, 4)
    assert capability_mask() == 0b11011
    assert 27 not in QEMU_CAPABILITIES  # no CAP_MKNOD: see identity's docstring


def test_bounding_set_drops_everything_else() -> None:
    drop = capabilities_to_drop(capability_mask(), last_cap=40)
    assert drop == [n for n in range(41) if n not in (0, 1, 3, 4)]
    assert 21 in drop  # CAP_SYS_ADMIN
    assert capabilities_to_drop(capability_mask(), last_cap=3) == [2]


def test_identity_groups(tmp_path: Path) -> None:
    assert Identity.for_sandbox("x", 100000, None).groups == ()
    device = tmp_path / "kvm"
    device.touch()
    os.chown(device, 0, 994)
    identity = Identity.for_sandbox("x", 100000, str(device))
    assert identity.groups == (994,)
    assert identity.uid == identity.gid == uid_for("x", 100000)
    os.chown(device, 0, 0)  # a root-owned /dev/kvm: never join the root group
    assert Identity.for_sandbox("x", 100000, str(device)).groups == ()


def test_bind_flags() -> None:
    from strongbox.mountapi import (
        MOUNT_ATTR_NODEV,
        MOUNT_ATTR_NOEXEC,
        MOUNT_ATTR_NOSUID,
        MOUNT_ATTR_RDONLY,
    )

    ro = bind_flags(Bind("/usr/share/qemu", False, "dir"))
    assert ro == MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
    rw = bind_flags(Bind("/run/x/shared", True, "dir"))
    assert rw == MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC
    dev = bind_flags(Bind("/dev/null", False, "device"))
    assert dev & MOUNT_ATTR_RDONLY and not dev & MOUNT_ATTR_NODEV


def test_driver_exposes_the_paths_on_its_command_line() -> None:
    spec = VMSpec(name="t", kernel=Path("/k/vmlinux"), initrd=Path("/i/initrd"), memory_mib=256,
                  vcpus=1, run_dir=Path("/run/vms/t"), share_dir=Path("/run/vms/t/shared"),
                  memory_file=Path("/dev/shm/tpl/memory"))
    vm = QemuVM(spec, Accelerator("tcg", "test"), jail=JailPolicy())
    assert vm._jail_paths("/usr/bin/qemu-system-x86_64") == [
        ("/usr/bin/qemu-system-x86_64", False), ("/k/vmlinux", False), ("/i/initrd", False),
        ("/run/vms/t/shared", True),
        ("/dev/shm/tpl/memory", True),
    ]


def test_config_keys() -> None:
    qemu = parse_config({}).hypervisor.qemu
    assert (qemu.jailer, qemu.jailer_uid_base, qemu.jailer_pids_max,
            qemu.jailer_memory_overhead) == (True, 100000, 128, 384)
    qemu = parse_config({"hypervisor": {"qemu": {
        "jailer": False, "jailer_uid_base": 200000, "jailer_pids_max": 64,
        "jailer_memory_overhead": 512}}}).hypervisor.qemu
    assert (qemu.jailer, qemu.jailer_uid_base, qemu.jailer_pids_max,
            qemu.jailer_memory_overhead) == (False, 200000, 64, 512)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("jailer", 1, "hypervisor.qemu.jailer: expected a boolean, got an integer"),
    ("jailer_uid_base", 0, "hypervisor.qemu.jailer_uid_base: expected at least 1"),
    ("jailer_uid_base", 2**32 - 100, "hypervisor.qemu.jailer_uid_base: expected at most"),
    ("jailer_uid_base", "1000", "expected an integer, got a string"),
    ("jailer_pids_max", 4, "hypervisor.qemu.jailer_pids_max: expected at least 16"),
    ("jailer_memory_overhead", 10, "jailer_memory_overhead: expected at least 64"),
    ("jailer_memroy_overhead", 512, "unknown key: hypervisor.qemu.jailer_memroy_overhead"),
])
def test_config_errors(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config({"hypervisor": {"qemu": {key: value}}})
