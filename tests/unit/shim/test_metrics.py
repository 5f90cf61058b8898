"""Tests for the guest cgroup statistics -> io.containerd.cgroups.v2.Metrics conversion."""

from __future__ import annotations

from typing import Any

import pytest

from strongbox.shim.metrics import (
    MAX_UINT64,
    MEMORY_STAT_FIELDS,
    METRICS_TYPE_URL,
    metrics_from_stats,
    stats_any,
)
from strongbox.shim.proto import cgroups_v2_pb2


def _guest_stats(**memory: Any) -> dict[str, Any]:
    """A ``stats_container`` answer shaped like the agent's (``Cgroup.stats()`` + status)."""
    return {
        "status": "running", "procs": [1, 7],
        "memory": {"current": 4_194_304, "max": 268_435_456,
                   "stat": {"anon": 1_048_576, "file": 2_097_152, "kernel": 65_536,
                            "kernel_stack": 16_384, "pagetables": 8_192, "sock": 0,
                            "shmem": 4096, "inactive_file": 1_000_000, "active_file": 97_152,
                            "slab": 12_288, "pgfault": 321, "pgmajfault": 2},
                   "oom": 1, "oom_kill": 1, **memory},
        "pids": {"current": 2, "max": 64},
        "cpu": {"usage_usec": 1500, "user_usec": 1000, "system_usec": 500, "nr_periods": 10,
                "nr_throttled": 3, "throttled_usec": 700},
    }


def test_fields_as_the_cgroup2_manager_fills_them() -> None:
    metrics = metrics_from_stats(_guest_stats())
    assert metrics.pids == cgroups_v2_pb2.PidsStat(current=2, limit=64)
    assert metrics.cpu == cgroups_v2_pb2.CPUStat(
        usage_usec=1500, user_usec=1000, system_usec=500, nr_periods=10, nr_throttled=3,
        throttled_usec=700)
    assert metrics.memory == cgroups_v2_pb2.MemoryStat(
        usage=4_194_304, usage_limit=268_435_456, anon=1_048_576, file=2_097_152,
        kernel_stack=16_384, shmem=4096, inactive_file=1_000_000, active_file=97_152,
        slab=12_288, pgfault=321, pgmajfault=2)
    assert metrics.memory_events == cgroups_v2_pb2.MemoryEvents(oom=1, oom_kill=1)
    # Io and Rdma are present and empty, as upstream's Stat() always sets them.
    assert metrics.HasField("io") and metrics.HasField("rdma")
    assert list(metrics.hugetlb) == []


def test_unlimited_is_max_uint64() -> None:
    stats = _guest_stats(max=None)
    stats["pids"]["max"] = None
    metrics = metrics_from_stats(stats)
    assert metrics.memory.usage_limit == MAX_UINT64 == 2**64 - 1
    assert metrics.pids.limit == MAX_UINT64


def test_missing_groups_read_as_zero() -> None:
    """A controller the cgroup lacks: upstream reads missing files as 0, limits too."""
    metrics = metrics_from_stats({"status": "created", "procs": []})
    assert metrics.pids == cgroups_v2_pb2.PidsStat()
    assert metrics.cpu == cgroups_v2_pb2.CPUStat()
    assert metrics.memory == cgroups_v2_pb2.MemoryStat()
    assert metrics.HasField("pids") and metrics.HasField("cpu") and metrics.HasField("memory")
    assert not metrics.HasField("memory_events")


def test_memory_events_only_when_reported() -> None:
    stats = _guest_stats()
    del stats["memory"]["oom"], stats["memory"]["oom_kill"]
    assert not metrics_from_stats(stats).HasField("memory_events")


def test_every_memory_stat_line_has_its_field() -> None:
    stat = {name: n for n, name in enumerate(MEMORY_STAT_FIELDS, start=1)}
    memory = metrics_from_stats({"memory": {"current": 0, "max": None, "stat": stat}}).memory
    for name, value in stat.items():
        assert getattr(memory, name) == value, name
    assert len(MEMORY_STAT_FIELDS) == 31


def test_stat_keys_cannot_overwrite_usage() -> None:
    stats = _guest_stats()
    stats["memory"]["stat"]["usage"] = 1
    assert metrics_from_stats(stats).memory.usage == 4_194_304


@pytest.mark.parametrize(("path", "value"), [
    (("memory", "current"), -1),
    (("memory", "max"), "max"),
    (("memory", "stat", "anon"), 1.5),
    (("pids", "current"), True),
    (("cpu", "usage_usec"), 2**64),
    (("memory", "stat"), [1]),
    (("cpu",), "busy"),
])
def test_malformed_values_are_refused(path: tuple[str, ...], value: object) -> None:
    stats = _guest_stats()
    node = stats
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError, match=rf"^stats\.{'.'.join(path)}: expected"):
        metrics_from_stats(stats)


def test_stats_any_carries_the_typeurl_name() -> None:
    packed = stats_any(_guest_stats(max=None))
    assert packed.type_url == METRICS_TYPE_URL == "io.containerd.cgroups.v2.Metrics"
    decoded = cgroups_v2_pb2.Metrics()
    decoded.ParseFromString(packed.value)
    assert decoded == metrics_from_stats(_guest_stats(max=None))
    # usage_limit = field 33 of MemoryStat: tag 33 << 3 = 264 = 0x88 0x02, then 2**64-1.
    assert b"\x88\x02" + b"\xff" * 9 + b"\x01" in packed.value
