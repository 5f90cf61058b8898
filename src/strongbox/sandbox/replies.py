"""Replies turns the agent's answers to the container verbs into validated host models.

The agent is not trusted: every answer is checked for shape and types
before the host acts on it, and a malformed one is a :class:`SandboxError`
naming what was wrong. Error codes are the protocol's
(:mod:`strongbox.protocol.messages`), statuses the status model's
(:mod:`strongbox.status`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strongbox import status as sm
from strongbox.errors import (
    AgentRequestError,
    ContainerStartError,
    ContainerStateError,
    SandboxError,
)
from strongbox.protocol import E_STATE

#: Container statuses as the agent may report them (it never says "creating").
STATUSES = (sm.CREATED, sm.RUNNING, sm.PAUSED, sm.STOPPED)


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: ``code`` follows runc (128 + N when killed by signal N)."""

    code: int
    signal: int | None

    @classmethod
    def from_agent(cls, data: Any) -> ExitStatus:
        if not isinstance(data, dict):
            raise malformed("exit status", data)
        code, sig = data.get("exit_code"), data.get("signal")
        if not isinstance(code, int) or not (sig is None or isinstance(sig, int)):
            raise malformed("exit status", data)
        return cls(code, sig)


class SandboxRequestError(SandboxError):
    """The agent refused a container verb.

    ``code`` is the agent's error code: ``not_found`` (no such container or
    exec id), ``exists`` (id taken), ``invalid_state`` (then ``status`` is
    the container's current status), ``container_error`` (a cgroup or
    set-up step failed), or a protocol code such as ``invalid_params``.
    """

    def __init__(self, message: str, code: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status

    @classmethod
    def from_agent(cls, exc: AgentRequestError) -> SandboxRequestError:
        status = exc.data.get("status")
        return cls(exc.remote_message, exc.code, status if isinstance(status, str) else None)


def state_error(exc: AgentRequestError, container_id: str, verb: str) -> ContainerStateError:
    """The agent's ``invalid_state`` answer as the status model's error (the same one the
    host's own check raises), or a malformed-reply error if its data is not statuses."""
    assert exc.code == E_STATE
    current, required = exc.data.get("status"), exc.data.get("required", [])
    if current not in STATUSES or not isinstance(required, list) or \
            not all(r in STATUSES for r in required):
        raise malformed("state error", exc.data)
    if not required:  # e.g. being removed, or overtaken: the agent's words say why
        return ContainerStateError(str(current), (), container_id=container_id,
                                   operation=verb, message=exc.remote_message)
    return ContainerStateError(str(current), tuple(str(r) for r in required),
                               container_id=container_id, operation=verb)


def malformed(what: str, data: Any) -> SandboxError:
    return SandboxError(f"agent returned a malformed {what}: {str(data)[:200]}")


#: No number the agent reports (pids, ids, ticks, bytes) is outside 64 bits: a larger
#: one is malformed, not something to do arithmetic with.
_INT_RANGE = range(-(2**63), 2**64)


def _int(data: dict[str, Any], key: str, what: str, *, optional: bool = False) -> Any:
    value = data.get(key)
    if value is None and optional:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value in _INT_RANGE:
        return value
    raise malformed(what, data)


@dataclass(frozen=True)
class ContainerState:
    """What the agent knows of a container: status, init's guest pid, exit code once stopped."""

    status: str
    pid: int | None
    exit_code: int | None

    @classmethod
    def from_agent(cls, data: Any) -> ContainerState:
        if not isinstance(data, dict) or data.get("status") not in STATUSES:
            raise malformed("container status", data)
        return cls(data["status"], _int(data, "pid", "container status", optional=True),
                   _int(data, "exit_code", "container status", optional=True))


@dataclass(frozen=True)
class ProcessInfo:
    """One process of a container, as ``ps`` shows it (read from the guest's /proc).

    ``pid``/``ppid`` are guest pids, ``ns_pid`` the pid inside the
    container's pid namespace; ``uid``/``gid`` are effective ids; times are
    seconds on the guest's boot clock (``start_time_s`` after its boot,
    ``elapsed_s`` since the process started, ``cpu_time_s`` user + system).
    """

    pid: int
    ppid: int
    uid: int
    gid: int
    state: str
    comm: str
    args: tuple[str, ...]
    ns_pid: int
    tty_nr: int
    start_time_ticks: int
    start_time_s: float
    elapsed_s: float
    cpu_time_s: float

    @classmethod
    def from_agent(cls, data: Any, clock_ticks: int, uptime_s: float) -> ProcessInfo:
        what = "process entry"
        if not isinstance(data, dict):
            raise malformed(what, data)
        args, state, comm = data.get("args"), data.get("state"), data.get("comm")
        if not (isinstance(args, list) and all(isinstance(a, str) for a in args)
                and isinstance(state, str) and isinstance(comm, str)):
            raise malformed(what, data)
        ticks = _int(data, "start_time_ticks", what)
        start = ticks / clock_ticks
        return cls(
            pid=_int(data, "pid", what), ppid=_int(data, "ppid", what),
            uid=_int(data, "uid", what), gid=_int(data, "gid", what), state=state, comm=comm,
            args=tuple(args), ns_pid=_int(data, "ns_pid", what),
            tty_nr=_int(data, "tty_nr", what), start_time_ticks=ticks, start_time_s=start,
            elapsed_s=max(0.0, uptime_s - start),
            cpu_time_s=_int(data, "cpu_ticks", what) / clock_ticks,
        )

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "ppid": self.ppid, "uid": self.uid, "gid": self.gid,
                "state": self.state, "comm": self.comm, "args": list(self.args),
                "ns_pid": self.ns_pid, "tty_nr": self.tty_nr,
                "start_time_ticks": self.start_time_ticks, "start_time_s": self.start_time_s,
                "elapsed_s": self.elapsed_s, "cpu_time_s": self.cpu_time_s}


def processes_from_agent(data: Any) -> list[ProcessInfo]:
    if not isinstance(data, dict) or not isinstance(data.get("processes"), list):
        raise malformed("process list", data)
    ticks = _int(data, "clock_ticks", "process list")
    uptime = data.get("uptime_s")
    if ticks <= 0 or not isinstance(uptime, int | float):
        raise malformed("process list", data)
    return [ProcessInfo.from_agent(p, ticks, float(uptime)) for p in data["processes"]]


def stats_from_agent(data: Any) -> dict[str, Any]:
    """Check the shape of ``stats_container``'s answer (``Cgroup.stats()`` + status, procs)."""
    what = "container statistics"
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise malformed(what, data)
    procs = data.get("procs")
    if not isinstance(procs, list) or not all(isinstance(p, int) for p in procs):
        raise malformed(what, data)
    for group in ("memory", "pids", "cpu"):
        values = data.get(group, {})
        if not isinstance(values, dict):
            raise malformed(what, data)
        for key, value in values.items():
            if key == "stat":
                if not isinstance(value, dict) or not all(isinstance(v, int)
                                                          for v in value.values()):
                    raise malformed(what, data)
            elif not (value is None or isinstance(value, int)):
                raise malformed(what, data)
    return data


def start_error(exc: SandboxRequestError) -> ContainerStartError:
    """A process the agent could not exec, with runc's exit code (127, 126, else 1)."""
    cause = exc.__cause__
    code = cause.data.get("exit_code") if isinstance(cause, AgentRequestError) else None
    return ContainerStartError(str(exc), code if isinstance(code, int) else 1)
