"""Network benchmark: strongbox against runc over podman's default (CNI) bridge.

One busybox container per runtime, started once and measured in alternating
runs (medians, after a warm-up), on the same image:
(1) TCP throughput, host -> container and container -> host, ``--mib`` MiB each way,
    between a Python socket on the host and busybox ``nc -ll -e`` in the
    container, addressed at the container's IP on cni-podman0 (no NAT in the path);
    the clock stops when the last byte has arrived (the container's ``ok``
    after it read them all, or the host's own count);
(2) ``--requests`` sequential HTTP GETs (Python http.client, a new connection each:
    busybox httpd serves one request per connection) to busybox ``httpd`` through
    ``-p 127.0.0.1:PORT:80`` (portmap's DNAT).
Traffic goes only to 127.0.0.1 and to the container's address on cni-podman0.
A table is printed; sections are appended to RESULTS.md unless ``--no-write``.

Usage: .venv/bin/python benchmarks/network.py [--runs N] [--mib M] [--requests R]
       [--runtimes runc,strongbox] [--no-write]
Small: .venv/bin/python benchmarks/network.py --runs 1 --mib 8 --requests 50 --runtimes runc
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.cli import alternating_medians, append_ratio_table, bench_args  # noqa: E402
from tests.framework import netcheck  # noqa: E402
from tests.framework.podman import IMAGE, Podman  # noqa: E402

SINK_PORT = 5001    # host -> container: the container reads N bytes, then answers "ok"
SOURCE_PORT = 5002  # container -> host: the container writes N bytes, then closes
CHUNK = b"\0" * (1 << 20)
MEASURES = ("host -> container", "container -> host", "HTTP requests")


def _own_args() -> argparse.Namespace:
    """This benchmark's options; bench_args (shared) then parses --runs and --no-write."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--runtimes", default="runc,strongbox",
                        help="comma-separated subset of runc,strongbox")
    own, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    names = [n.strip() for n in own.runtimes.split(",") if n.strip()]
    unknown = set(names) - {"runc", "strongbox"}
    if unknown or not names:
        sys.exit(f"--runtimes: unknown {sorted(unknown)}; choose from runc,strongbox")
    own.runtimes = names
    return own


def _script(mib: int) -> str:
    """The container's main process: the two nc servers in the background, httpd in front.

    ``dd`` in 64 KiB blocks moves the bytes: busybox ``head -c`` reads 4 KiB at a time
    and caps the sink near 50 MiB/s on this machine even over loopback, which would
    measure head, not the network. ``fullblock`` makes ``count`` a byte count.
    """
    blocks = f"bs=65536 count={mib * 16}"
    return (f"nc -ll -p {SINK_PORT} -e sh -c "
            f"'dd of=/dev/null {blocks} iflag=fullblock 2>/dev/null; echo ok' & "
            f"nc -ll -p {SOURCE_PORT} -e sh -c 'dd if=/dev/zero {blocks} 2>/dev/null' & "
            + netcheck.httpd_script(80))


def _connect(host: str, port: int) -> socket.socket:
    return netcheck.retry(lambda: socket.create_connection((host, port), timeout=120), 60)


def host_to_container(host: str, nbytes: int) -> float:
    """Seconds to send ``nbytes`` and hear that the container read every one of them."""
    with _connect(host, SINK_PORT) as s:
        started = time.monotonic()
        left = nbytes
        while left:
            n = min(left, len(CHUNK))
            s.sendall(CHUNK[:n])
            left -= n
        reply = b""
        while chunk := s.recv(64):
            reply += chunk
        elapsed = time.monotonic() - started
    if reply.strip() != b"ok":
        raise RuntimeError(f"the container's sink answered {reply!r}")
    return elapsed


def container_to_host(host: str, nbytes: int) -> float:
    """Seconds from the connection until ``nbytes`` have arrived from the container."""
    with _connect(host, SOURCE_PORT) as s:
        started = time.monotonic()
        got = 0
        while chunk := s.recv(1 << 20):
            got += len(chunk)
        elapsed = time.monotonic() - started
    if got != nbytes:
        raise RuntimeError(f"got {got} bytes from the container, wanted {nbytes}")
    return elapsed


def http_requests(port: int, count: int) -> float:
    """Seconds for ``count`` sequential GETs, one connection each, through ``-p``."""
    netcheck.fetch(f"http://127.0.0.1:{port}/", timeout=60)  # ready (not timed)
    started = time.monotonic()
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/")
        body = conn.getresponse().read()
        conn.close()
        if body != netcheck.PAYLOAD:
            raise RuntimeError(f"httpd answered {body!r}")
    return time.monotonic() - started


def main() -> int:
    own = _own_args()
    args, runc = bench_args(__doc__)
    nbytes = own.mib << 20
    with tempfile.TemporaryDirectory(prefix="sbx-bench-net-") as tmp:
        podman = Podman(Path(tmp))
        podman.load_busybox()
        runtimes = {"runc": runc, "strongbox": str(podman.runtime)}
        runtimes = {name: runtimes[name] for name in own.runtimes}
        targets: dict[str, tuple[str, int]] = {}  # runtime -> (container IP, host port)
        try:
            for name, path in runtimes.items():
                port = netcheck.free_port()
                podman("run", "-d", "--name", f"bench-{name}", "-p", f"127.0.0.1:{port}:80",
                       IMAGE, "sh", "-c", _script(own.mib), check=True, runtime=path)
                ip = podman("inspect", "--format", "{{.NetworkSettings.IPAddress}}",
                            f"bench-{name}", check=True, runtime=path).stdout.strip()
                targets[name] = (ip, port)

            def measure(i: int) -> dict[str, float]:
                row = {}
                for name, (ip, port) in targets.items():
                    row[f"{name}: {MEASURES[0]}"] = host_to_container(ip, nbytes)
                    row[f"{name}: {MEASURES[1]}"] = container_to_host(ip, nbytes)
                    row[f"{name}: {MEASURES[2]}"] = http_requests(port, own.requests)
                return row

            med = alternating_medians(args.runs, measure)
        finally:
            for name, path in runtimes.items():
                podman("rm", "--force", "-t", "0", f"bench-{name}", timeout=120, runtime=path)

    print("\n| measure | runtime | median | rate |\n|---|---|---|---|")
    for what in MEASURES:
        for name in runtimes:
            value = med[f"{name}: {what}"]
            rate = (f"{own.requests / value:.0f} req/s" if what == MEASURES[2]
                    else f"{own.mib / value:.1f} MiB/s")
            print(f"| {what} | {name} | {value:.3f} s | {rate} |")
    if not args.no_write:
        baseline = "runc" if "runc" in runtimes else next(iter(runtimes))
        gvisor = shutil.which("runsc") is not None
        captions = {
            MEASURES[0]: f"{own.mib} MiB from a host socket to busybox `nc` in the container, "
                         "at its IP on cni-podman0, until the container has read them all",
            MEASURES[1]: f"{own.mib} MiB from busybox `nc` in the container to a host socket, "
                         "at its IP on cni-podman0",
            MEASURES[2]: f"{own.requests} sequential GETs of a 27-byte file, a new connection "
                         "each (Python http.client), busybox `httpd` via `-p 127.0.0.1:PORT:80`",
        }
        for what in MEASURES:
            rows = {name: med[f"{name}: {what}"] for name in runtimes}
            if what == MEASURES[2]:
                rates = ", ".join(f"{n} {own.requests / v:.0f} req/s" for n, v in rows.items())
            else:
                rates = ", ".join(f"{n} {own.mib / v:.1f} MiB/s" for n, v in rows.items())
            append_ratio_table(f"Network over podman's bridge: {what}",
                               f"{captions[what]}; median of {args.runs} alternating runs "
                               f"after a warm-up; cold boots. Rates: {rates}.",
                               rows, baseline, gvisor=gvisor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
