"""Collector turns each scrape into metric families: one look at every sandbox, in parallel.

Series (all ``strongbox_``; ``sandbox`` is the VM's name, containers add
``container`` and, from CRI's annotations, ``pod_namespace`` and ``pod_name``):

* per sandbox: ``sandbox_up`` (its owner answered in time), ``sandbox_memory_bytes``
  and ``sandbox_vcpus`` (the VM's size), ``sandbox_containers``,
  ``agent_rtt_seconds`` (one round trip to its agent), ``guest_memory_{total,
  available,free,used}_bytes`` (the guest's own view; used is total less available),
  ``qemu_cpu_seconds_total``, ``qemu_{rss,pss}_bytes`` (from the host, shown even when
  the owner is silent);
* per container: ``container_cpu_seconds_total``, ``container_memory_bytes``,
  ``container_memory_limit_bytes``, ``container_pids`` (its cgroup in the guest);
* ``sandbox_start_seconds``: a histogram of how long the running sandboxes' starts
  took (boot or clone, and the first container);
* the factory: ``template_present``, ``template_fresh`` and, when a warm pool
  answers, ``pool_vms{state="free"|"warming"|"in_use"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from strongbox.config import Config
from strongbox.hypervisor import vmm_processes
from strongbox.metrics.discover import Found, sandboxes
from strongbox.metrics.hostproc import cost
from strongbox.sandbox.ownersocket import ask

#: CRI's annotations naming a pod (containerd's ``io.kubernetes.cri.*``).
POD_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
POD_NAME = "io.kubernetes.cri.sandbox-name"
#: Histogram buckets for start latency, seconds (TCG starts take seconds).
START_BUCKETS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


async def _reports(found: list[Found], timeout: float) -> list[dict[str, Any] | None]:
    async def one(sandbox: Found) -> dict[str, Any] | None:
        try:
            return await ask(sandbox.socket, timeout)
        except (OSError, TimeoutError, ValueError):
            return None

    return list(await asyncio.gather(*(one(f) for f in found)))


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"strongbox_{name}", doc, labels=labels)


class Collector:
    """A prometheus_client collector of every sandbox under ``roots``."""

    def __init__(self, roots: list[Path], config: Config, state_dir: Path,
                 timeout: float = 2.0) -> None:
        self.roots, self.config, self.state_dir, self.timeout = roots, config, state_dir, timeout

    def collect(self) -> Iterator[Metric]:
        found = sandboxes(self.roots)
        reports = asyncio.run(_reports(found, self.timeout))
        yield from self._sandbox_families(found, reports)
        yield from self._container_families(found, reports)
        yield from self._factory_families()

    def _sandbox_families(self, found: list[Found], reports: list[dict[str, Any] | None]
                          ) -> Iterator[Metric]:
        s = ["sandbox"]
        up = _gauge("sandbox_up", "1 when the sandbox's owner answered within the deadline", s)
        size = _gauge("sandbox_memory_bytes", "The VM's RAM", s)
        vcpus = _gauge("sandbox_vcpus", "The VM's vCPUs", s)
        count = _gauge("sandbox_containers", "Containers in the sandbox", s)
        rtt = _gauge("agent_rtt_seconds", "One round trip to the guest's agent", s)
        guest = {k: _gauge(f"guest_memory_{k}_bytes", f"Guest memory, {k} (the guest's view)", s)
                 for k in ("total", "available", "free", "used")}
        cpu = CounterMetricFamily("strongbox_qemu_cpu_seconds", "QEMU's CPU time, user and "
                                  "system", labels=s)
        rss = _gauge("qemu_rss_bytes", "QEMU's resident memory", s)
        pss = _gauge("qemu_pss_bytes", "QEMU's proportional set size (shared pages divided)", s)
        starts: list[float] = []
        qemus = vmm_processes([f.run_dir for f in found])
        for sandbox, report in zip(found, reports, strict=True):
            name = [sandbox.name]
            up.add_metric(name, 1.0 if report is not None else 0.0)
            pid = qemus.get(sandbox.run_dir)
            spent = cost(pid) if pid is not None else None
            if spent is not None:
                cpu.add_metric(name, spent.cpu_seconds)
                rss.add_metric(name, spent.rss_bytes)
                pss.add_metric(name, spent.pss_bytes)
            if report is None:
                continue
            size.add_metric(name, report["memory_mib"] * 2**20)
            vcpus.add_metric(name, report["vcpus"])
            count.add_metric(name, len(report["containers"]))
            rtt.add_metric(name, report["agent_rtt_s"])
            memory = dict(report["guest"])
            if isinstance(memory.get("mem_total_kib"), int) and \
                    isinstance(memory.get("mem_available_kib"), int):
                memory["mem_used_kib"] = memory["mem_total_kib"] - memory["mem_available_kib"]
            for key, family in guest.items():
                value = memory.get(f"mem_{key}_kib")
                if isinstance(value, int):
                    family.add_metric(name, value * 1024)
            if report.get("start_s"):
                starts.append(float(report["start_s"]))
        yield from (up, size, vcpus, count, rtt, *guest.values(), cpu, rss, pss)
        yield _histogram(starts)

    def _container_families(self, found: list[Found], reports: list[dict[str, Any] | None]
                            ) -> Iterator[Metric]:
        c = ["sandbox", "container", "pod_namespace", "pod_name"]
        cpu = CounterMetricFamily("strongbox_container_cpu_seconds", "The container's CPU time "
                                  "(its cgroup in the guest)", labels=c)
        memory = _gauge("container_memory_bytes", "The container's memory use (memory.current)",
                        c)
        limit = _gauge("container_memory_limit_bytes", "The container's memory limit", c)
        pids = _gauge("container_pids", "Tasks in the container's cgroup", c)
        for sandbox, report in zip(found, reports, strict=True):
            for container in (report or {}).get("containers", []):
                notes = container.get("annotations") or {}
                labels = [sandbox.name, container["id"], notes.get(POD_NAMESPACE, ""),
                          notes.get(POD_NAME, "")]
                stats = container.get("stats") or {}
                usage = (stats.get("cpu") or {}).get("usage_usec")
                if isinstance(usage, int):
                    cpu.add_metric(labels, usage / 1e6)
                for family, group, key in ((memory, "memory", "current"),
                                           (limit, "memory", "max"), (pids, "pids", "current")):
                    value = (stats.get(group) or {}).get(key)
                    if isinstance(value, int):
                        family.add_metric(labels, value)
        yield from (cpu, memory, limit, pids)

    def _factory_families(self) -> Iterator[Metric]:
        from strongbox.hostcheck.prepared import pool_status, template_status

        status = template_status(self.config, self.state_dir, self.roots[0])
        present = _gauge("template_present", "1 when a VM template exists", [])
        fresh = _gauge("template_fresh", "1 when the VM template matches its inputs", [])
        present.add_metric([], 1.0 if status.get("present") else 0.0)
        fresh.add_metric([], 1.0 if status.get("fresh") else 0.0)
        yield from (present, fresh)
        pool = pool_status(self.config)
        if pool is not None:
            vms = _gauge("pool_vms", "The warm pool's VMs by state", ["state"])
            for state in ("free", "warming", "in_use"):
                vms.add_metric([state], float(pool.get(state) or 0))
            yield vms


def _histogram(starts: list[float]) -> HistogramMetricFamily:
    buckets = [(str(b), float(sum(1 for s in starts if s <= b))) for b in START_BUCKETS]
    buckets.append(("+Inf", float(len(starts))))
    return HistogramMetricFamily("strongbox_sandbox_start_seconds", "How long the running "
                                 "sandboxes' starts took (boot or clone and the first "
                                 "container)", buckets=buckets, sum_value=sum(starts))
