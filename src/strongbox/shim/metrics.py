"""Metrics turns the guest's cgroup v2 statistics into containerd's Stats answer.

The guest agent reports ``Cgroup.stats()`` (``strongbox/container/cgroups.py``)
as a dict::

    {"memory": {"current": int, "max": int | None, "stat": {name: int, ...},
                "oom": int, "oom_kill": int},
     "pids":   {"current": int, "max": int | None},
     "cpu":    {"usage_usec": int, "user_usec": int, "system_usec": int,
                "nr_periods": int, "nr_throttled": int, "throttled_usec": int}}

where a limit of ``None`` is the file's "max" (unlimited) and a missing
group is a controller the cgroup does not have. :func:`metrics_from_stats`
fills ``io.containerd.cgroups.v2.Metrics`` exactly as the cgroups v2
manager's ``Stat()`` does from the same files (containerd/cgroups
``cgroup2/manager.go``; ``v2/manager.go`` in the cgroups v1.0.x that
containerd 1.6 vendors), so crictl, ``ctr task metrics`` and the CRI plugin
read the same numbers as for runc:

* ``memory.stat`` lines land in the MemoryStat field of the same name;
  other keys (``kernel``, ``pagetables``, ...) have no field and are dropped.
* ``usage`` is memory.current and ``usage_limit`` memory.max, and
  ``pids.limit`` is pids.max; "max" becomes 2**64-1 (``math.MaxUint64`` in
  ``getStatFileContentUint64``, ``cgroup2/utils.go``), and a file that is
  not there becomes 0, so a missing group gives zero limits.
* ``memory_events`` is set only when memory.events was read; the guest
  reports its ``oom`` and ``oom_kill`` counters (low/high/max stay 0).
* Pids, CPU, Memory, Io and Rdma are always present, Io and Rdma empty (the
  guest does not report them); hugetlb is an empty list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from google.protobuf.any_pb2 import Any as AnyProto

from strongbox.shim.convert import any_message
from strongbox.shim.proto import cgroups_v2_pb2

#: typeurl's name for the message (containerd/typeurl ``types.go``: the bare
#: proto full name), as the runc shim's Stats answers on a cgroup v2 host.
METRICS_TYPE_URL: Final = "io.containerd.cgroups.v2.Metrics"

#: What cgroup v2 files report as "max".
MAX_UINT64: Final = 2**64 - 1

#: MemoryStat fields read from memory.stat, by the name of their line.
MEMORY_STAT_FIELDS: Final = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty",
    "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file",
    "active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault",
    "pgmajfault", "workingset_refault", "workingset_activate", "workingset_nodereclaim",
    "pgrefill", "pgscan", "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree",
    "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc",
)

CPU_STAT_FIELDS: Final = (
    "usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec",
)


def metrics_from_stats(stats: Mapping[str, Any]) -> cgroups_v2_pb2.Metrics:
    """The guest's statistics as ``io.containerd.cgroups.v2.Metrics``.

    Other top-level keys (the agent adds ``status`` and ``procs``) are
    ignored. A value that is not a non-negative integer below 2**64 (or
    ``None`` where the module docstring allows it) raises ValueError.
    """
    memory = _group(stats, "memory")
    pids = _group(stats, "pids")
    cpu = _group(stats, "cpu")
    metrics = cgroups_v2_pb2.Metrics(
        pids=cgroups_v2_pb2.PidsStat(current=_counter(pids, "current", "pids"),
                                     limit=_limit(pids, "max", "pids")),
        cpu=cgroups_v2_pb2.CPUStat(**{name: _counter(cpu, name, "cpu")
                                      for name in CPU_STAT_FIELDS}),
        memory=_memory(memory),
        rdma=cgroups_v2_pb2.RdmaStat(),
        io=cgroups_v2_pb2.IOStat(),
    )
    if memory is not None and ("oom" in memory or "oom_kill" in memory):
        metrics.memory_events.CopyFrom(cgroups_v2_pb2.MemoryEvents(
            oom=_counter(memory, "oom", "memory"),
            oom_kill=_counter(memory, "oom_kill", "memory")))
    return metrics


def stats_any(stats: Mapping[str, Any]) -> AnyProto:
    """The Any a StatsResponse carries: type URL :data:`METRICS_TYPE_URL`."""
    return any_message(metrics_from_stats(stats))


def _memory(memory: Mapping[str, Any] | None) -> cgroups_v2_pb2.MemoryStat:
    stat = _group(memory or {}, "stat", "memory.")
    fields = {name: _counter(stat, name, "memory.stat") for name in MEMORY_STAT_FIELDS}
    return cgroups_v2_pb2.MemoryStat(
        usage=_counter(memory, "current", "memory"),
        usage_limit=_limit(memory, "max", "memory"),
        **fields)


def _group(stats: Mapping[str, Any], key: str, prefix: str = ""
           ) -> Mapping[str, Any] | None:
    value = stats.get(key)
    if value is None or isinstance(value, Mapping):
        return value
    raise ValueError(f"stats.{prefix}{key}: expected an object, got {value!r}")


def _counter(group: Mapping[str, Any] | None, key: str, where: str) -> int:
    """A counter; absent or None (file missing) is 0, as upstream's reader."""
    value = None if group is None else group.get(key)
    return 0 if value is None else _uint64(value, f"{where}.{key}")


def _limit(group: Mapping[str, Any] | None, key: str, where: str) -> int:
    """A limit: None ("max") is 2**64-1; a group or key not reported is 0."""
    if group is None or key not in group:
        return 0
    value = group[key]
    return MAX_UINT64 if value is None else _uint64(value, f"{where}.{key}")


def _uint64(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_UINT64:
        raise ValueError(f"stats.{where}: expected an integer in 0..2**64-1, got {value!r}")
    return value
