"""``strongbox metrics``: a real endpoint scraped over HTTP while a CLI sandbox and a
containerd one run, parsed with ``prometheus_client.parser``; a SIGSTOPped QEMU makes only
its own sandbox ``up 0``; deleted sandboxes' series are gone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.framework import cli
from tests.framework.bundle import make_bundle
from tests.framework.containerd import IMAGE, NAMESPACE, RUNTIME, Containerd, ctr_daemon
from tests.framework.procs import qemu_pids, wait_until

pytestmark = pytest.mark.vm
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def containerd(tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[Containerd]:
    (tmp_path / "ctrd").mkdir()
    with ctr_daemon(tmp_path / "ctrd") as daemon:
        yield daemon


def _scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=30) as answer:
        text = answer.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _of(samples: Samples, name: str, sandbox: str) -> float | None:
    return next((v for (n, labels), v in samples.items()
                 if n == name and ("sandbox", sandbox) in labels), None)


def test_metrics_of_a_cli_and_a_containerd_sandbox(containerd: Containerd,
                                                   tmp_path: Path) -> None:
    root = containerd.sbroot
    port = _free_port()
    server = subprocess.Popen(cli.strongbox_argv("--root", root, "metrics", "--listen",
                                                 f"127.0.0.1:{port}", "--timeout", "2"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"
    cli_vm, shim_vm = "mcli", f"{NAMESPACE}-mshim"
    try:
        bundle = make_bundle(tmp_path / "b", ["sleep", "600"])
        started = cli.run_to_files(cli.strongbox_argv("--root", root, "run", "-d", "--bundle",
                                                      bundle, "mcli"),
                                   tmp_path / "out", tmp_path / "err")
        assert started.returncode == 0, started.stderr
        assert containerd.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, "mshim", "sleep",
                              "600").returncode == 0
        assert wait_until(lambda: _is_up(url, cli_vm) and _is_up(url, shim_vm), 30, 0.5)
        samples = _scrape(url)
        for vm, container in ((cli_vm, "mcli"), (shim_vm, "mshim")):
            assert _of(samples, "strongbox_sandbox_up", vm) == 1.0
            size = _of(samples, "strongbox_sandbox_memory_bytes", vm)
            assert size == 256 * 2**20, size  # the default VM size
            total = _of(samples, "strongbox_guest_memory_total_bytes", vm)
            assert total is not None and 0.8 * size < total <= size, total  # less the kernel's
            assert (_of(samples, "strongbox_qemu_pss_bytes", vm) or 0) > 0
            assert (_of(samples, "strongbox_qemu_cpu_seconds_total", vm) or 0) > 0
            assert _of(samples, "strongbox_sandbox_containers", vm) == 1.0
            assert (_of(samples, "strongbox_agent_rtt_seconds", vm) or 0) > 0
            memory = [v for (n, labels), v in samples.items()
                      if n == "strongbox_container_memory_bytes" and ("sandbox", vm) in labels
                      and ("container", container) in labels]
            assert memory and memory[0] > 0, samples
        assert samples[("strongbox_sandbox_start_seconds_count", ())] >= 2

        (qemu,) = [p for p in qemu_pids(str(root))
                   if f"strongbox-{cli_vm},".encode() in Path(f"/proc/{p}/cmdline").read_bytes()]
        os.kill(qemu, signal.SIGSTOP)
        try:  # its owner cannot get an answer: up 0 within the deadline, the other still up
            samples = _scrape(url)
            assert _of(samples, "strongbox_sandbox_up", cli_vm) == 0.0
            assert _of(samples, "strongbox_sandbox_up", shim_vm) == 1.0
            assert (_of(samples, "strongbox_qemu_pss_bytes", cli_vm) or 0) > 0  # host's view
        finally:
            os.kill(qemu, signal.SIGCONT)

        assert cli.run("--root", root, "delete", "--force", "mcli").returncode == 0
        containerd.ctr("task", "kill", "-s", "KILL", "mshim")
        containerd.ctr("task", "delete", "-f", "mshim")
        containerd.ctr("container", "delete", "mshim")
        assert wait_until(lambda: not [k for k in _scrape(url) if ("sandbox", cli_vm) in k[1]
                                       or ("sandbox", shim_vm) in k[1]], 20, 0.5)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
        cli.run("--root", root, "delete", "--force", "mcli")
    assert server.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()


def _is_up(url: str, vm: str) -> bool:
    try:
        return _of(_scrape(url), "strongbox_sandbox_up", vm) == 1.0
    except OSError:
        return False


def test_a_bad_listen_address_is_one_clear_error() -> None:
    cli.assert_one_line_error(cli.run("metrics", "--listen", "nowhere"), "--listen",
                              "expected HOST:PORT")
