"""The configuration file: defaults, strict keys and types, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongbox.config import Config, load_config, parse_config
from strongbox.errors import ConfigError


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRONGBOX_CONFIG", raising=False)
    monkeypatch.setattr("strongbox.config.DEFAULT_CONFIG_PATH", tmp_path / "absent.toml")
    assert load_config() == Config()


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[hypervisor.qemu]\naccelerator = "tcg"\ndefault_memory = 512\ndefault_vcpus = 2\n'
        'kernel_params = "foo=1"\n[agent]\ndial_timeout = 5\n[runtime]\noverlay = true\n'
        "[factory]\nenable_template = false\n"
        '[network]\ninternetworking_model = "none"\ndisable_vhost_net = false\nnic_slots = 4\n'
    )
    config = load_config(path)
    assert (config.network.internetworking_model, config.network.disable_vhost_net,
            config.network.nic_slots) == ("none", False, 4)
    assert config.hypervisor.qemu.accelerator == "tcg"
    assert config.hypervisor.qemu.default_memory == 512
    assert config.agent.dial_timeout == 5.0
    assert config.runtime.overlay is True


@pytest.mark.parametrize(("text", "message"), [
    ("[hypervisor.qemu]\nfoo = 1\n", "unknown key: hypervisor.qemu.foo"),
    ("[nope]\n", "unknown key: nope"),
    ("[hypervisor.qemu]\ndefault_memory = \"lots\"\n",
     "hypervisor.qemu.default_memory: expected an integer, got a string"),
    ("[hypervisor.qemu]\ndefault_memory = true\n",
     "hypervisor.qemu.default_memory: expected an integer, got a boolean"),
    ("[hypervisor.qemu]\naccelerator = \"hvf\"\n",
     "hypervisor.qemu.accelerator: expected one of auto, kvm, tcg, got 'hvf'"),
    ("[hypervisor.qemu]\ndefault_memory = 16\n", "expected at least 64"),
    ("[agent]\ndial_timeout = 0\n", "agent.dial_timeout: expected a positive number"),
    ("agent = 3\n", "agent: expected a table"),
    ("[network]\ninternetworking_model = \"macvtap\"\n",
     "network.internetworking_model: expected one of tcfilter, none, got 'macvtap'"),
    ("[network]\nnic_slots = 0\n", "network.nic_slots: expected 1..4, got 0"),
    ("[network]\nnic_slots = 5\n", "network.nic_slots: expected 1..4, got 5"),
    ("[hypervisor.qemu]\nmachine_type = \"pc\"\n",
     "hypervisor.qemu.machine_type: expected one of microvm, q35, got 'pc'"),
    ("[hypervisor.qemu]\npcie_root_port = 2\n",
     "hypervisor.qemu.pcie_root_port: root ports need machine_type = 'q35', not 'microvm'"),
    ("[hypervisor.qemu]\nmachine_type = \"q35\"\npcie_root_port = 99\n",
     "hypervisor.qemu.pcie_root_port: expected at most 16"),
    ("[hypervisor.qemu]\nmachine_type = \"q35\"\nblock_device_driver = \"virtio-mmio\"\n",
     "hypervisor.qemu.block_device_driver: machine_type 'q35' takes 'virtio-blk', "
     "got 'virtio-mmio'"),
    ("[hypervisor.qemu]\nblock_device_driver = \"virtio-blk\"\n",
     "machine_type 'microvm' takes 'virtio-mmio', got 'virtio-blk'"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[hypervisor\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_explicit_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_parse_config_direct() -> None:
    assert parse_config({}) == Config()
