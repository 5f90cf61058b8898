"""State is the on-disk record of each container, shared by every CLI invocation.

Layout under ``--root`` (default /run/strongbox), one directory per
container, a documented contract (version 1)::

    containers/<id>/state.json    the record below; replaced atomically
                                  (temp file + fsync + rename) on every
                                  change, so readers never see half a file
                                  and a failed write (a full disk) leaves
                                  the previous record
    containers/<id>/lock          flock()ed by a CLI command for the whole of
                                  a mutating operation (create, start, delete,
                                  pause, resume, update, exec set-up), which
                                  serializes concurrent commands on one container
    containers/<id>/monitor.sock  the monitor's control socket, while it lives
    containers/.~new-<random>/    a record being created: built whole, then
                                  renamed to ``<id>`` (``~`` is never in an id)

Who writes: the creating command builds the directory with its first record
(``creating``) aside and renames it into place, so an id either has a whole
record or no directory at all, and a failed create leaves nothing; from
then on the monitor (the host process that owns the VM) writes every
transition, always through :meth:`StateStore.save`, the one writer;
``delete`` removes the directory. Readers (``state``, ``list``) take no lock
and never block on the VM: a record whose monitor is gone is reported as
stopped. Every failure to read or write is a :class:`StateDirError` or a
:class:`StrongboxError` naming the root or the container and the reason,
one line; a record that cannot be parsed (corrupt, wrongly typed) is one
too, and ``delete --force`` clears such an id all the same
(:func:`strongbox.runtime.container.force_delete`).

Reading is on the path of every ``state`` and ``list``: what only writers
and removers use (``secrets``, ``shutil``, ``datetime``; the atomic writer's
``tempfile``) is imported where it is used, and the record is a plain class
rather than a dataclass (``dataclasses`` brings ``inspect``: milliseconds).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from pathlib import Path

from strongbox.atomicfile import atomic_write
from strongbox.errors import ContainerExists, ContainerNotFound, StateDirError, StrongboxError
from strongbox.status import CREATING, STOPPED, ContainerStatus

TYPE_CHECKING = False  # checkers take this as True; `typing` costs every command milliseconds
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

STATE_VERSION = 1
STATE_FILE = "state.json"
#: A record being built aside; ``~`` is not allowed in ids, so never a container.
BUILDING_PREFIX = ".~new-"
#: A building directory this old was left by a create that died.
ABANDONED_AFTER = 60.0
OCI_VERSION = "1.0.2"


def now_rfc3339() -> str:
    import datetime

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


#: The record's fields, in the order state.json lists them.
FIELDS = ("id", "bundle", "rootfs", "status", "created", "monitor_pid", "monitor_start",
          "annotations", "exit_code", "exit_signal", "terminal", "overlay", "owner", "version")


class ContainerState:
    """Everything the CLI knows about one container between invocations.

    A dataclass in all but name (keyword construction, ``==`` by value, a
    field-by-field repr): see the module's docstring for why it is not one.
    """

    def __init__(self, id: str, bundle: str, rootfs: str, status: ContainerStatus = CREATING,
                 created: str | None = None, monitor_pid: int = 0,
                 monitor_start: int | None = None, annotations: dict[str, str] | None = None,
                 exit_code: int | None = None, exit_signal: int | None = None,
                 terminal: bool = False, overlay: bool = False, owner: str = "",
                 version: int = STATE_VERSION) -> None:
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.status = status
        self.created: str = created if created is not None else now_rfc3339()
        self.monitor_pid = monitor_pid
        self.monitor_start = monitor_start
        self.annotations: dict[str, str] = annotations if annotations is not None else {}
        self.exit_code = exit_code
        self.exit_signal = exit_signal
        self.terminal = terminal
        self.overlay = overlay
        self.owner = owner
        self.version = version

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContainerState):
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable and compared by value

    def __repr__(self) -> str:
        return f"ContainerState({', '.join(f'{k}={getattr(self, k)!r}' for k in FIELDS)})"

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
        record = {name: getattr(self, name) for name in FIELDS}
        record["annotations"] = dict(self.annotations)
        return record

    @classmethod
    def from_json(cls, data: Any) -> ContainerState:
        """The record in ``data``; ValueError or TypeError naming the first wrong field."""
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("version") != STATE_VERSION:
            raise StrongboxError(f"container {data.get('id')}: state version "
                                 f"{data.get('version')} is not {STATE_VERSION}")
        fields = {k: v for k, v in data.items() if k in _FIELD_TYPES}
        missing = sorted(k for k in _REQUIRED if k not in fields)
        if missing:
            raise TypeError(f"missing {', '.join(missing)}")
        for name, value in fields.items():
            _check_type(name, value)
        fields["status"] = ContainerStatus(str(fields.get("status", CREATING)))
        return cls(**fields)


_NONE = type(None)
#: The JSON type of every field: a record is checked whole before anything uses it
#: (a wrongly typed pid must be an error, not a crash deep in a comparison).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "bundle": (str,), "rootfs": (str,), "status": (str,), "created": (str,),
    "monitor_pid": (int,), "monitor_start": (int, _NONE), "annotations": (dict,),
    "exit_code": (int, _NONE), "exit_signal": (int, _NONE), "terminal": (bool,),
    "overlay": (bool,), "owner": (str,), "version": (int,),
}
_REQUIRED = ("id", "bundle", "rootfs")
_JSON_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object",
               _NONE: "null"}


def _check_type(name: str, value: Any) -> None:
    expected = _FIELD_TYPES[name]
    is_bool = isinstance(value, bool)
    if not isinstance(value, expected) or (is_bool and bool not in expected):
        wanted = " or ".join(_JSON_NAMES[t] for t in expected)
        raise TypeError(f"{name}: expected {wanted}, got {json.dumps(value)[:40]}")
    if isinstance(value, dict) and not all(isinstance(k, str) and isinstance(v, str)
                                           for k, v in value.items()):
        raise TypeError(f"{name}: expected an object of strings")


class StateStore:
    """The containers under one runtime root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.base = root / "containers"

    def dir(self, container_id: str) -> Path:
        return self.base / container_id

    def socket_path(self, container_id: str) -> Path:
        return self.dir(container_id) / "monitor.sock"

    def exists(self, container_id: str) -> bool:
        """Whether anything at all occupies the id (even a record that cannot be read)."""
        return os.path.lexists(self.dir(container_id))

    # --- writing -------------------------------------------------------------------------
    def create(self, state: ContainerState) -> None:
        """Claim the id with its first record, atomically: all of it or nothing.

        The directory is built aside (record included) and renamed into place;
        rename(2) refuses to replace a non-empty directory, so of concurrent
        creates exactly one wins, and a failure at any step leaves no trace.
        """
        import secrets
        import shutil

        self._make_base()
        self._sweep_abandoned()
        building = self.base / f"{BUILDING_PREFIX}{secrets.token_hex(8)}"
        try:
            building.mkdir(mode=0o711)
            _write_record(building / STATE_FILE, state)
            os.rename(building, self.dir(state.id))
        except OSError as exc:
            shutil.rmtree(building, ignore_errors=True)
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR) \
                    and self.exists(state.id):
                raise ContainerExists(state.id) from None
            raise StateDirError(f"root {self.root}: cannot create container {state.id} "
                                f"({_reason(exc)})") from exc

    def save(self, state: ContainerState) -> None:
        """Replace the record (the one writer of state.json): the old or the new, never half."""
        try:
            _write_record(self.dir(state.id) / STATE_FILE, state)
        except OSError as exc:
            raise StateDirError(f"root {self.root}: cannot record the state of container "
                                f"{state.id} ({_reason(exc)})") from exc

    def _make_base(self) -> None:
        self._check_base()
        try:
            self.base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirError(f"root {self.root}: cannot create ({_reason(exc)})") from exc

    def _sweep_abandoned(self) -> None:
        """Remove what creates that died while building their record left (best effort)."""
        cutoff = time.time() - ABANDONED_AFTER
        try:
            entries = [p for p in self.base.iterdir() if p.name.startswith(BUILDING_PREFIX)]
        except OSError:
            return
        import shutil

        for path in entries:
            with contextlib.suppress(OSError):
                if path.lstat().st_mtime < cutoff:
                    shutil.rmtree(path, ignore_errors=True)

    # --- reading -------------------------------------------------------------------------
    def load(self, container_id: str) -> ContainerState:
        """The record of ``container_id``; a one-line error if it is absent or unusable."""
        path = self.dir(container_id) / STATE_FILE
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            if not self.exists(container_id):
                self._check_base()
                raise ContainerNotFound(container_id) from None
            raise StrongboxError(f"container {container_id}: its state record is missing "
                                 f"({_FORCE_HINT})") from None
        except OSError as exc:
            self._check_base()
            raise StrongboxError(f"container {container_id}: cannot read its state "
                                 f"({_reason(exc)})") from exc
        try:
            record = ContainerState.from_json(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise StrongboxError(f"container {container_id}: unreadable state ({exc}; "
                                 f"{_FORCE_HINT})") from exc
        if record.id != container_id:
            raise StrongboxError(f"container {container_id}: unreadable state (it records "
                                 f"id {record.id!r}; {_FORCE_HINT})")
        return record

    def _check_base(self) -> None:
        """A root that is not a directory is the error, not the container."""
        for path in (self.base, self.root):
            if os.path.lexists(path) and not path.is_dir():
                raise StateDirError(f"root {self.root}: {path} is not a directory")

    def ids(self) -> list[str]:
        try:
            return sorted(p.name for p in self.base.iterdir()
                          if not p.name.startswith(BUILDING_PREFIX) and p.is_dir())
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._check_base()
            raise StateDirError(f"root {self.root}: cannot list containers "
                                f"({_reason(exc)})") from exc

    # --- removing ------------------------------------------------------------------------
    def remove(self, container_id: str) -> None:
        """Remove whatever occupies the id: a directory (whole or not), or a stray file.

        Never raises (it runs on failure paths); :meth:`exists` tells whether it worked.
        """
        path = self.dir(container_id)
        if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
            with contextlib.suppress(OSError):
                path.unlink()
            return
        import shutil

        shutil.rmtree(path, ignore_errors=True)

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


_FORCE_HINT = "`strongbox delete --force` removes it"


def _write_record(path: Path, state: ContainerState) -> None:
    atomic_write(path, json.dumps(state.to_json(), indent=2).encode() + b"\n")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
