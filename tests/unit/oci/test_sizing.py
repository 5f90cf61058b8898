"""VM sizing from the spec's memory limit, CPU quota and cpuset."""

from __future__ import annotations

from typing import Any

import pytest

from strongbox.oci.sizing import vm_size

MIB = 1 << 20


def _spec(
    memory: dict[str, Any] | None = None, cpu: dict[str, Any] | None = None
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if memory is not None:
        resources["memory"] = memory
    if cpu is not None:
        resources["cpu"] = cpu
    return {"linux": {"resources": resources}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, (256, 1)),
        (_spec(), (256, 1)),
        (_spec(memory={"limit": -1}), (256, 1)),
        (_spec(memory={"limit": 0}), (256, 1)),
        (_spec(memory={"limit": 512 * MIB}), (512 + 64, 1)),
        (_spec(memory={"limit": 512 * MIB + 1}), (513 + 64, 1)),
        (_spec(memory={"limit": 1}), (128, 1)),
        (_spec(memory={"limit": 64 * MIB}), (128, 1)),
        (_spec(memory={"limit": 65 * MIB}), (129, 1)),
        (_spec(cpu={"quota": 250000, "period": 100000}), (256, 3)),
        (_spec(cpu={"quota": 1000}), (256, 1)),
        (_spec(cpu={"quota": -1}), (256, 1)),
        (_spec(cpu={"cpus": "0-1"}), (256, 2)),
        (_spec(cpu={"cpus": ""}), (256, 1)),
        (_spec(cpu={"quota": 100000, "cpus": "0-2"}), (256, 3)),
        (_spec(cpu={"quota": 300000, "cpus": "0"}), (256, 3)),
        (_spec(cpu={"cpus": "0-15"}), (256, 4)),
        (_spec(cpu={"quota": 10**9}), (256, 4)),
    ],
)
def test_vm_size(spec: dict[str, Any], expected: tuple[int, int]) -> None:
    assert vm_size(
        spec, default_memory_mib=256, default_vcpus=1, memory_margin_mib=64, max_vcpus=4
    ) == expected


@pytest.mark.parametrize(("default_vcpus", "max_vcpus", "expected"), [(8, 4, 4), (2, 4, 2)])
def test_default_vcpus_are_capped(default_vcpus: int, max_vcpus: int, expected: int) -> None:
    size = vm_size(
        {},
        default_memory_mib=256,
        default_vcpus=default_vcpus,
        memory_margin_mib=64,
        max_vcpus=max_vcpus,
    )
    assert size == (256, expected)


def test_min_memory_is_configurable() -> None:
    size = vm_size(
        _spec(memory={"limit": MIB}),
        default_memory_mib=256,
        default_vcpus=1,
        memory_margin_mib=32,
        max_vcpus=1,
        min_memory_mib=16,
    )
    assert size == (33, 1)
