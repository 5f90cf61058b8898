"""``strongbox metrics --listen ADDR``: a Prometheus endpoint for every sandbox on the host."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from strongbox.config import load_config
from strongbox.errors import ConfigError
from strongbox.runtime import paths


def register(sub: Any) -> None:
    p = sub.add_parser("metrics", help="serve Prometheus metrics of every sandbox on the host",
                       description="Find every running sandbox under the root (the CLI's and "
                       "the shim's alike) at each scrape and report QEMU's cost, the guest's "
                       "memory and each container's cgroup, labelled by sandbox, container "
                       "and pod.")
    p.add_argument("--listen", metavar="ADDR", default="127.0.0.1:9464",
                   help="HOST:PORT to serve /metrics on (default 127.0.0.1:9464)")
    p.add_argument("--also-root", action="append", default=[], metavar="DIR",
                   help="another root to look in (repeatable)")
    p.add_argument("--timeout", type=float, default=2.0,
                   help="seconds each sandbox's owner has to answer a scrape (default 2)")
    p.add_argument("--once", action="store_true", help="print one scrape to stdout and exit")
    p.set_defaults(func=cmd_metrics)


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen: expected HOST:PORT (like 127.0.0.1:9464), got {value!r}")
    return host.strip("[]"), int(port)


def cmd_metrics(args: argparse.Namespace) -> int:
    from prometheus_client import CollectorRegistry, generate_latest, start_http_server

    from strongbox.metrics.collector import Collector

    if args.timeout <= 0:
        raise ConfigError(f"--timeout: expected seconds > 0, got {args.timeout}")
    host, port = _address(args.listen)
    config = load_config(args.config)
    roots = [paths.root_dir(args.root), *(Path(r).absolute() for r in args.also_root)]
    registry = CollectorRegistry()
    registry.register(Collector(roots, config, paths.state_dir(args.state_dir, config),
                                args.timeout))
    if args.once:
        sys.stdout.write(generate_latest(registry).decode())
        return 0
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # sigwait's
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"--listen {args.listen}: {exc.strerror}") from exc
    sys.stderr.write(f"strongbox metrics: serving http://{args.listen}/metrics\n")
    sys.stderr.flush()
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    return 0
