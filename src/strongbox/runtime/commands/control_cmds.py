"""``kill``, ``pause``, ``resume``, ``update``, ``exec``: acting on a live container."""

from __future__ import annotations

import argparse
import signal
from typing import Any

from strongbox.errors import ConfigError
from strongbox.runtime import paths
from strongbox.runtime.container import Container
from strongbox.runtime.state import StateStore


def register(sub: Any) -> None:
    kill = sub.add_parser("kill", help="send a signal to a container's process (default TERM)")
    kill.add_argument("id", metavar="ID")
    kill.add_argument("signal", nargs="?", default="SIGTERM", metavar="SIGNAL")
    kill.add_argument("--all", "-a", action="store_true",
                      help="signal every process of the container")
    kill.set_defaults(func=cmd_kill)

    for verb, helptext in (("pause", "freeze every process of a container"),
                           ("resume", "thaw a paused container")):
        parser = sub.add_parser(verb, help=helptext)
        parser.add_argument("id", metavar="ID")
        parser.set_defaults(func=cmd_pause if verb == "pause" else cmd_resume)

    update = sub.add_parser("update", help="change a running container's resource limits")
    update.add_argument("id", metavar="ID")
    update.add_argument("--resources", "-r", metavar="FILE",
                        help="linux.resources JSON ('-' for stdin)")
    update.add_argument("--memory", help="memory limit in bytes (k, m, g suffixes)")
    update.add_argument("--memory-swap", help="memory plus swap limit in bytes")
    update.add_argument("--memory-reservation", help="soft memory limit in bytes")
    update.add_argument("--pids-limit", type=int, help="maximum number of processes")
    update.add_argument("--cpu-quota", type=int, help="CFS quota in microseconds")
    update.add_argument("--cpu-period", type=int, help="CFS period in microseconds")
    update.add_argument("--cpu-share", "--cpu-shares", dest="cpu_shares", type=int,
                        help="relative CPU weight")
    update.add_argument("--kernel-memory", help="accepted and ignored (deprecated in runc)")
    update.add_argument("--kernel-memory-tcp", help="accepted and ignored (deprecated in runc)")
    update.add_argument("--cpuset-cpus", help="CPUs (e.g. 0-1) inside the VM")
    update.add_argument("--cpuset-mems", help="memory nodes")
    update.set_defaults(func=cmd_update)


def parse_signal(text: str) -> int:
    """A signal by number, or by name with or without SIG (case-insensitive)."""
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
    else:
        name = text.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
            base, _, offset = name.partition("+" if "+" in name else "-")
            if offset.isdigit():
                value = (signal.SIGRTMIN + int(offset) if base == "SIGRTMIN"
                         else signal.SIGRTMAX - int(offset))
                if signal.SIGRTMIN <= value <= signal.SIGRTMAX:
                    return int(value)
        sig = getattr(signal.Signals, name, None) if name in signal.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise ConfigError(f"signal: unknown signal {text!r} (use a name such as TERM or a number)")


def _container(args: argparse.Namespace) -> Container:
    return Container.load(StateStore(paths.root_dir(args.root)), args.id)


def cmd_kill(args: argparse.Namespace) -> int:
    signum = parse_signal(args.signal)
    _container(args).kill(signum, all_processes=args.all)
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    _container(args).pause()
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    _container(args).resume()
    return 0


def parse_bytes(option: str, text: str) -> int:
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    value = text.strip().lower().removesuffix("b")
    factor = scale.get(value[-1:], 1)
    digits = value[:-1] if value[-1:] in scale else value
    if digits == "-1":
        return -1
    if not digits.isdigit():
        raise ConfigError(f"{option}: expected a number of bytes (e.g. 512m), got {text!r}")
    return int(digits) * factor


def read_resources_file(path: str) -> dict[str, Any]:
    """The ``-r`` file ("-": stdin) as checked linux.resources; every problem names the file.

    Read with the one reader of untrusted JSON (size, UTF-8, depth, lone
    surrogates ...) and checked as config-linux.md says, so the flags merged
    into it meet well-typed objects, and a field error names this file.
    """
    from strongbox.oci.jsonfile import read_section_file
    from strongbox.oci.spec import validate_resources

    return read_section_file(path, "--resources", "linux.resources", "OCI linux.resources",
                             validate_resources, stdin=True)


def resources_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The linux.resources object an update asks for."""
    resources: dict[str, Any] = {}
    if args.resources:
        resources = read_resources_file(args.resources)
    memory = resources.setdefault("memory", {})
    for option, key in (("memory", "limit"), ("memory_swap", "swap"),
                        ("memory_reservation", "reservation")):
        if getattr(args, option) is not None:
            memory[key] = parse_bytes("--" + option.replace("_", "-"), getattr(args, option))
    cpu = resources.setdefault("cpu", {})
    for option, key in (("cpu_quota", "quota"), ("cpu_period", "period"),
                        ("cpu_shares", "shares"), ("cpuset_cpus", "cpus"),
                        ("cpuset_mems", "mems")):
        if getattr(args, option) is not None:
            cpu[key] = getattr(args, option)
    if args.pids_limit is not None:
        resources["pids"] = {"limit": args.pids_limit}
    for key in ("memory", "cpu"):
        if not resources[key]:
            del resources[key]
    if not resources:
        raise ConfigError("update: nothing to change (give --memory, --pids-limit, "
                          "--cpu-quota ... or -r FILE)")
    return resources  # validated by the sandbox's update_container, for every front door


def cmd_update(args: argparse.Namespace) -> int:
    resources = resources_from_args(args)
    _container(args).update(resources)
    return 0
