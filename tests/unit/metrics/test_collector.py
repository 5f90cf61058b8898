"""The metric families one scrape makes from owners' reports (the real endpoint is scraped
in tests/integration/test_metrics.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strongbox.config import parse_config
from strongbox.metrics.collector import Collector
from strongbox.metrics.discover import Found, sandboxes
from strongbox.sandbox.ownersocket import SOCKET


def _report(vm: str) -> dict[str, Any]:
    return {"sandbox": vm, "memory_mib": 256, "vcpus": 1,
            "start_s": 1.5, "agent_rtt_s": 0.004,
            "guest": {"mem_total_kib": 240000, "mem_available_kib": 200000,
                      "mem_free_kib": 190000},
            "containers": [{"id": "c1", "status": "running", "annotations": {
                "io.kubernetes.cri.sandbox-namespace": "default",
                "io.kubernetes.cri.sandbox-name": "web"},
                "stats": {"cpu": {"usage_usec": 2_500_000}, "memory": {"current": 4096,
                                                                       "max": None},
                          "pids": {"current": 3}}}]}


def _samples(collector: Collector, found: list[Found], reports: list[Any]) -> dict[Any, float]:
    families = [*collector._sandbox_families(found, reports),
                *collector._container_families(found, reports)]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in families for s in f.samples}


def test_an_answering_and_a_silent_sandbox(tmp_path: Path) -> None:
    collector = Collector([tmp_path], parse_config({}), tmp_path)
    found = [Found("a", tmp_path / "a"), Found("b", tmp_path / "b")]
    samples = _samples(collector, found, [_report("a"), None])
    assert samples[("strongbox_sandbox_up", (("sandbox", "a"),))] == 1.0
    assert samples[("strongbox_sandbox_up", (("sandbox", "b"),))] == 0.0
    assert samples[("strongbox_sandbox_memory_bytes", (("sandbox", "a"),))] == 256 * 2**20
    assert samples[("strongbox_guest_memory_total_bytes", (("sandbox", "a"),))] == 240000 * 1024
    assert samples[("strongbox_guest_memory_used_bytes", (("sandbox", "a"),))] == 40000 * 1024
    assert not any(("sandbox", "b") in k[1] and k[0] != "strongbox_sandbox_up"
                   for k in samples)  # no QEMU named b runs here: only its up gauge
    labels = (("container", "c1"), ("pod_name", "web"), ("pod_namespace", "default"),
              ("sandbox", "a"))
    assert samples[("strongbox_container_cpu_seconds_total", labels)] == 2.5
    assert samples[("strongbox_container_memory_bytes", labels)] == 4096
    assert ("strongbox_container_memory_limit_bytes", labels) not in samples  # "max": none
    assert samples[("strongbox_container_pids", labels)] == 3
    assert samples[("strongbox_sandbox_start_seconds_bucket", (("le", "2.0"),))] == 1.0
    assert samples[("strongbox_sandbox_start_seconds_bucket", (("le", "1.0"),))] == 0.0


def test_discovery_sees_run_directories_with_an_owner_socket(tmp_path: Path) -> None:
    for path in ("vms/a", "vms/b", "clients/moby-1/vms/c"):
        (tmp_path / path).mkdir(parents=True)
    (tmp_path / "vms" / "a" / SOCKET).touch()
    (tmp_path / "clients" / "moby-1" / "vms" / "c" / SOCKET).touch()
    assert [f.name for f in sandboxes([tmp_path, tmp_path])] == ["c", "a"]  # once each
