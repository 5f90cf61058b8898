"""State is the on-disk record of each container, shared by every CLI invocation.

Layout under ``--root`` (default /run/strongbox), one directory per
container, a documented contract (version 1)::

    containers/<id>/state.json    the record below; replaced atomically
                                  (temp file + rename) on every change, so
                                  readers never see half a file
    containers/<id>/lock          flock()ed by a CLI command for the whole of
                                  a mutating operation (create, start, delete,
                                  pause, resume, update, exec set-up), which
                                  serializes concurrent commands on one container
    containers/<id>/monitor.sock  the monitor's control socket, while it lives

Who writes: the creating command writes ``creating``; from then on the
monitor (the host process that owns the VM) writes every transition;
``delete`` removes the directory. Readers (``state``, ``list``) take no lock
and never block on the VM: a record whose monitor is gone is reported as
stopped.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from strongbox.atomicfile import atomic_write
from strongbox.errors import ContainerExists, ContainerNotFound, StateDirError, StrongboxError
from strongbox.status import CREATING, STOPPED, ContainerStatus

STATE_VERSION = 1
OCI_VERSION = "1.0.2"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def process_start_ticks(pid: int) -> int | None:
    """A process's start time (clock ticks since boot): with the pid, a unique identity."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    return pid > 0 and start_ticks is not None and process_start_ticks(pid) == start_ticks


@dataclass
class ContainerState:
    """Everything the CLI knows about one container between invocations."""

    id: str
    bundle: str
    rootfs: str
    status: ContainerStatus = CREATING
    created: str = field(default_factory=now_rfc3339)
    monitor_pid: int = 0
    monitor_start: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    exit_code: int | None = None
    exit_signal: int | None = None
    terminal: bool = False
    overlay: bool = False
    owner: str = ""
    version: int = STATE_VERSION

    @property
    def monitor_alive(self) -> bool:
        return process_alive(self.monitor_pid, self.monitor_start)

    def effective_status(self) -> ContainerStatus:
        """The status to report: a record whose monitor died is stopped."""
        if self.status != STOPPED and self.monitor_pid and not self.monitor_alive:
            return STOPPED
        return self.status

    def oci_state(self, status: str | None = None) -> dict[str, Any]:
        """The runtime-spec state document (runtime.md "State")."""
        status = status or self.effective_status()
        return {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "status": status,
            "pid": self.monitor_pid if status not in (STOPPED, CREATING) else 0,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
            "annotations": self.annotations,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ContainerState:
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("version") != STATE_VERSION:
            raise StrongboxError(f"container {data.get('id')}: state version "
                                 f"{data.get('version')} is not {STATE_VERSION}")
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        fields["status"] = ContainerStatus(str(fields.get("status", CREATING)))
        return cls(**fields)


class StateStore:
    """The containers under one runtime root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / "containers"

    def dir(self, container_id: str) -> Path:
        return self.base / container_id

    def socket_path(self, container_id: str) -> Path:
        return self.dir(container_id) / "monitor.sock"

    def create(self, state: ContainerState) -> None:
        """Claim the id (atomically: mkdir) and write the first record."""
        try:
            self.base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirError(f"root {self.root}: cannot create ({exc.strerror})") from exc
        try:
            self.dir(state.id).mkdir(mode=0o711)
        except FileExistsError:
            raise ContainerExists(state.id) from None
        except OSError as exc:
            raise StateDirError(f"root {self.root}: cannot write ({exc.strerror})") from exc
        self.save(state)

    def save(self, state: ContainerState) -> None:
        data = json.dumps(state.to_json(), indent=2).encode() + b"\n"
        atomic_write(self.dir(state.id) / "state.json", data)

    def load(self, container_id: str) -> ContainerState:
        path = self.dir(container_id) / "state.json"
        for _ in range(3):
            try:
                return ContainerState.from_json(json.loads(path.read_text()))
            except FileNotFoundError:
                if not self.dir(container_id).is_dir():
                    raise ContainerNotFound(container_id) from None
                time.sleep(0.01)  # created this instant: the record follows the mkdir
            except (ValueError, TypeError) as exc:
                raise StrongboxError(f"container {container_id}: unreadable state ({exc})") \
                    from exc
        raise ContainerNotFound(container_id)

    def ids(self) -> list[str]:
        try:
            return sorted(p.name for p in self.base.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def remove(self, container_id: str) -> None:
        shutil.rmtree(self.dir(container_id), ignore_errors=True)

    @contextlib.contextmanager
    def lock(self, container_id: str, timeout: float = 60.0) -> Iterator[None]:
        """Serialize mutating commands on one container."""
        directory = self.dir(container_id)
        if not directory.is_dir():
            raise ContainerNotFound(container_id)
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StrongboxError(f"container {container_id} is busy: another "
                                             "command holds its lock") from None
                    time.sleep(0.02)
            yield
        finally:
            os.close(fd)
