"""The kernel fragment check catches options Kconfig silently dropped."""

from __future__ import annotations

from strongbox.guest.kernel import fragment_text, missing_options, parse_config


def test_parse_config_reads_set_and_unset() -> None:
    cfg = parse_config("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x\"\n# comment\n")
    assert cfg == {"CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_C": '"x"'}


def test_missing_options_reports_dropped_and_changed() -> None:
    fragment = "CONFIG_A=y\nCONFIG_B=n\nCONFIG_C=64\n"
    final = "CONFIG_A=y\nCONFIG_C=32\n"
    assert missing_options(fragment, final) == ["CONFIG_C=64 (got 32)"]
    assert missing_options("CONFIG_D=y\n", "") == ["CONFIG_D=y (got n)"]


def test_fragment_has_what_the_issue_requires() -> None:
    cfg = parse_config(fragment_text())
    for option in ("64BIT", "SMP", "VIRTIO_MMIO", "VIRTIO_MMIO_CMDLINE_DEVICES", "VIRTIO_BLK",
                   "VIRTIO_CONSOLE", "HW_RANDOM_VIRTIO", "VIRTIO_NET", "NET_9P_VIRTIO", "9P_FS",
                   "OVERLAY_FS", "TMPFS", "DEVTMPFS", "EXT4_FS", "UNIX", "INET", "UTS_NS",
                   "IPC_NS", "PID_NS", "NET_NS", "USER_NS", "CGROUPS", "MEMCG", "CGROUP_PIDS",
                   "CGROUP_SCHED", "CPUSETS", "CGROUP_FREEZER", "SECCOMP_FILTER", "PVH",
                   # q35: PCI Express with native hotplug, virtio on PCI, ACPI
                   "ACPI", "PCI", "PCIEPORTBUS", "HOTPLUG_PCI", "HOTPLUG_PCI_PCIE", "VIRTIO_PCI"):
        assert cfg.get(f"CONFIG_{option}") == "y", option
    for option in ("MODULES", "VIRTIO_PCI_LEGACY"):
        assert cfg.get(f"CONFIG_{option}") == "n", option
