"""``state``, ``list``, ``ps``, ``events``: looking at containers without changing them."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strongbox import status as sm
from strongbox.errors import StrongboxError
from strongbox.runtime import paths
from strongbox.runtime import state as st
from strongbox.runtime.container import Container
from strongbox.runtime.state import StateStore


def register(sub: Any) -> None:
    state = sub.add_parser("state", help="print the OCI state of a container as JSON")
    state.add_argument("id", metavar="ID")
    state.set_defaults(func=cmd_state)

    lst = sub.add_parser("list", aliases=["ls"], help="list containers")
    lst.add_argument("--format", "-f", choices=("table", "json"), default="table")
    lst.add_argument("--quiet", "-q", action="store_true", help="ids only")
    lst.set_defaults(func=cmd_list)

    ps = sub.add_parser("ps", help="list the processes of a container")
    ps.add_argument("id", metavar="ID")
    ps.add_argument("--format", "-f", choices=("table", "json"), default="table")
    ps.add_argument("ps_args", nargs=argparse.REMAINDER, help="accepted for runc compatibility")
    ps.set_defaults(func=cmd_ps)

    events = sub.add_parser("events", help="stream statistics and OOM events as JSON lines")
    events.add_argument("id", metavar="ID")
    events.add_argument("--stats", action="store_true", help="print statistics once and exit")
    events.add_argument("--interval", default="5s", help="time between statistics (e.g. 5s, "
                        "500ms)")
    events.set_defaults(func=cmd_events)


def _store(args: argparse.Namespace) -> StateStore:
    return StateStore(paths.root_dir(args.root))


def cmd_state(args: argparse.Namespace) -> int:
    print(json.dumps(Container.load(_store(args), args.id).oci_state(), indent=2))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    store = _store(args)
    states = []
    for container_id in store.ids():
        try:
            states.append(Container.load(store, container_id).oci_state())
        except StrongboxError:
            continue  # deleted while we listed
    if args.quiet:
        for s in states:
            print(s["id"])
    elif args.format == "json":
        print(json.dumps(states))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"])
                 for s in states]
        _table(rows)
    return 0


def cmd_ps(args: argparse.Namespace) -> int:
    """``--format json``: host pids, the sandbox's own; the table: the guest's processes.

    Clients read the JSON list as *host* pids: containerd's runc shim hands it
    to ``docker top``, which filters the host's ``ps -ef`` by it. Pids from the
    guest's pid namespaces name unrelated host processes there (pid 1 is the
    host's init), so they leaked host processes and their command lines. What
    represents the container on the host is its monitor (the pid ``state``
    reports) and what the monitor runs: QEMU, its jail, hooks in flight. Those
    are real host processes of this container, so ``docker top`` shows the VM
    instead of strangers. The table, for people, shows the guest's processes
    with the pids the container sees (which work with ``exec ... kill``).
    """
    container = Container.load(_store(args), args.id)
    processes = container.processes()  # the status rule and a live monitor, as for the table
    if args.format == "json":
        record = container.record
        alive = st.process_alive(record.monitor_pid, record.monitor_start)
        print(json.dumps(host_processes(record.monitor_pid) if alive else []))
        return 0
    in_ns = {p["pid"]: p["ns_pid"] for p in processes}
    rows = [("UID", "PID", "PPID", "STAT", "TIME", "CMD")]
    rows += [(str(p["uid"]), str(p["ns_pid"]), str(in_ns.get(p["ppid"], 0)), p["state"],
              f"{p['cpu_time_s']:.2f}", " ".join(p["args"]) or f"[{p['comm']}]")
             for p in processes]
    _table(rows)
    return 0


def host_processes(root: int) -> list[int]:
    """``root`` and every live descendant of it, from the host's /proc, in tree order."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # exited while we looked
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [root]
    while queue:
        pid = queue.pop(0)
        found.append(pid)
        queue.extend(sorted(children.get(pid, [])))
    return found


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _interval(text: str) -> float:
    from strongbox.errors import ConfigError

    units = (("ms", 0.001), ("s", 1.0), ("m", 60.0))
    for suffix, scale in units:
        if text.endswith(suffix):
            try:
                value = float(text[: -len(suffix)]) * scale
            except ValueError:
                break
            if value > 0:
                return value
    raise ConfigError(f"--interval: expected a duration such as 5s or 500ms, got {text!r}")


def cmd_events(args: argparse.Namespace) -> int:
    interval = _interval(args.interval)
    container = Container.load(_store(args), args.id)
    oom_seen: int | None = None
    while True:
        container.record = container.store.load(container.id)
        if container.status() == sm.STOPPED:
            return 0 if not args.stats else _stopped(container.id)
        try:
            stats = container.stats()
        except StrongboxError:
            if _stops_soon(container):  # the container ended between two polls
                return 0
            raise
        _emit({"type": "stats", "id": container.id, "data": runc_stats(stats)})
        oom = int((stats.get("memory") or {}).get("oom_kill") or 0)
        if oom_seen is not None and oom > oom_seen:
            _emit({"type": "oom", "id": container.id})
        oom_seen = oom
        if args.stats:
            return 0
        time.sleep(interval)


def _stops_soon(container: Container, grace: float = 3.0) -> bool:
    """Whether the container is, or within ``grace`` seconds becomes, stopped: a monitor
    that lost its container closes its socket a moment before its process exits."""
    deadline = time.monotonic() + grace
    while True:
        try:
            container.record = container.store.load(container.id)
        except StrongboxError:
            return True  # deleted meanwhile: it ended
        if container.status() == sm.STOPPED:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _stopped(container_id: str) -> int:
    raise StrongboxError(f"container {container_id} is stopped: no statistics")


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def runc_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Guest cgroup v2 statistics in the shape of runc's ``events --stats`` data."""
    memory = stats.get("memory") or {}
    cpu = stats.get("cpu") or {}
    pids = stats.get("pids") or {}
    usec = 1000  # cgroup v2 counts microseconds; runc reports nanoseconds
    return {
        "cpu": {"usage": {"total": int(cpu.get("usage_usec") or 0) * usec,
                          "user": int(cpu.get("user_usec") or 0) * usec,
                          "kernel": int(cpu.get("system_usec") or 0) * usec},
                "throttling": {"throttledPeriods": int(cpu.get("nr_throttled") or 0),
                               "throttledTime": int(cpu.get("throttled_usec") or 0) * usec}},
        "memory": {"usage": {"usage": int(memory.get("current") or 0),
                             "limit": int(memory.get("max") or 0)},
                   "raw": dict(memory.get("stat") or {})},
        "pids": {"current": int(pids.get("current") or 0), "limit": int(pids.get("max") or 0)},
    }
