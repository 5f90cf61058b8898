"""The pure parts of NIC slots: slot MACs, how many slots, when vhost-net is used."""

from __future__ import annotations

import dataclasses
import os

import pytest

from strongbox.config import NetworkConfig
from strongbox.sandbox.network import slots


def test_slot_macs_are_fixed_locally_administered_unicast_and_distinct() -> None:
    macs = [slots.slot_mac(i) for i in range(4)]
    assert len(set(macs)) == 4 and macs == [slots.slot_mac(i) for i in range(4)]
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0b10 and not first & 0b01  # locally administered, unicast


def test_the_model_decides_the_slot_count() -> None:
    assert slots.slot_count(NetworkConfig()) == 2
    assert slots.slot_count(NetworkConfig(nic_slots=4)) == 4
    assert slots.slot_count(NetworkConfig(internetworking_model="none", nic_slots=4)) == 0


def test_vhost_net_only_when_allowed_and_it_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []

    def fake_open(path: str, flags: int) -> int:
        opened.append(path)
        raise FileNotFoundError(path)

    monkeypatch.setattr(os, "open", fake_open)
    assert slots._vhost_fd(NetworkConfig()) is None and opened == []  # disabled: not tried
    allowed = dataclasses.replace(NetworkConfig(), disable_vhost_net=False)
    assert slots._vhost_fd(allowed) is None and opened == ["/dev/vhost-net"]
    monkeypatch.setattr(os, "open", lambda path, flags: 42)
    assert slots._vhost_fd(allowed) == 42
