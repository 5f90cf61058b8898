"""Sandbox is the SDK's front door: a microVM for untrusted code, driven from Python.

``Sandbox.create(image=...)`` unpacks the image once into the image cache
(:func:`strongbox.image.prepare`), writes a bundle whose init only keeps the sandbox
alive (:mod:`.spec`) and runs it with the command line's own ``run --detach
--overlay``: the sandbox is then an ordinary strongbox container under the runtime
root, owned by its monitor, a process of its own. That is what makes a sandbox
outlive the Python process that made it (``Sandbox.connect(id)`` from another one),
and what makes ``strongbox list``, ``delete``, ``gc`` and ``metrics`` see it like any
container. The overlay mode keeps every write in guest memory: the cached image is
shared read-only by every sandbox made from it.

Work goes to the monitor's control socket: ``run``/``spawn`` are its ``exec``
(:mod:`.session`), ``files`` its ``file`` op (:mod:`.files`), ``pause``/``resume``
its verbs; ``close`` is a forced delete, which leaves nothing behind (no QEMU,
mount, socket, run directory or record) whatever state the sandbox is in.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongbox import status as sm
from strongbox.errors import (
    ConfigError,
    ContainerNotFound,
    SandboxError,
    SandboxNotFound,
    StrongboxError,
)
from strongbox.ids import validate_id
from strongbox.runtime import paths
from strongbox.runtime.container import Container, force_delete
from strongbox.runtime.state import StateStore
from strongbox.sandbox.imagedisk import ANNOTATION as ROOTFS_IMAGE
from strongbox.sdk.files import Files
from strongbox.sdk.session import Input, Output, RunResult, Session
from strongbox.sdk.spec import ANNOTATION, check_env, exec_process, sandbox_spec

#: Where a root keeps the bundles of its SDK sandboxes.
BUNDLES = "sdk"
#: What ``network=`` takes besides a list of CIDRs.
NETWORK_MODES = ("none", "all")
_CREATE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class SandboxInfo:
    """One SDK sandbox under a root, as ``Sandbox.list`` finds it."""

    id: str
    status: str
    created: str


class Process:
    """A process started with :meth:`Sandbox.spawn`, running in the background."""

    def __init__(self, session: Session, timeout_s: float | None) -> None:
        self._session = session
        self._timeout_s = timeout_s
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"sandbox-process-{session.exec_id}")
        self._thread.start()

    @property
    def exec_id(self) -> str:
        return self._session.exec_id

    def _run(self) -> None:
        try:
            self._result = self._session.result(self._timeout_s)
        except BaseException as exc:  # handed to wait()
            self._error = exc

    def kill(self, signum: int = 9) -> None:
        """Signal the process (SIGKILL unless ``signum``); nothing if it ended."""
        self._session.signal(signum)

    def wait(self, timeout_s: float | None = None) -> RunResult:
        """Its result once it ended; ``TimeoutError`` if ``timeout_s`` passes first (the
        process runs on: :meth:`kill` it)."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"process {self.exec_id} still runs after {timeout_s:g}s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()


class Sandbox:
    """One sandbox: a container in a microVM of its own, for code nobody reviewed."""

    def __init__(self, store: StateStore, sandbox_id: str, spec: dict[str, Any]) -> None:
        self._store, self.id, self._spec = store, sandbox_id, spec
        self.files = Files(self)

    # --- making and finding sandboxes ---------------------------------------------------
    @classmethod
    def create(cls, image: str | Path, *, memory_mib: int | None = None,
               vcpus: int | None = None, timeout_s: float | None = None,
               env: dict[str, str] | None = None,
               network: str | Sequence[str] = "none", netns: str | None = None,
               hostname: str | None = None, root: str | Path | None = None,
               config: str | Path | None = None) -> Sandbox:
        """Start a sandbox from ``image``: an OCI image layout directory or archive
        (``podman save --format oci-archive``, ``skopeo copy``), or a root filesystem
        directory. Writes stay in guest memory; the image is never written.

        ``memory_mib`` and ``vcpus`` size it (the VM adds its own margin); ``timeout_s``
        ends it after that long; ``env`` is set for every process; ``network`` is
        ``"none"`` (only ``lo``), ``"all"``, or the CIDRs it may connect to, through the
        network namespace ``netns`` (a path such as ``/run/netns/NAME``, made by the
        caller as CNI would: the sandbox's interface is the one found there).
        """
        from strongbox.config import load_config

        memory = _positive_int("memory_mib", memory_mib)
        cpus = _positive_int("vcpus", vcpus)
        if timeout_s is not None and (not isinstance(timeout_s, int | float)
                                      or isinstance(timeout_s, bool) or timeout_s <= 0):
            raise ConfigError(f"timeout_s: expected a positive number of seconds, got "
                              f"{timeout_s!r}")
        extra_env = check_env(env)
        egress = _egress(network, netns)
        cfg = load_config(config)
        store = StateStore(paths.root_dir(str(root) if root is not None else None))
        rootfs, defaults, disk = _rootfs(Path(image), paths.state_dir(None, cfg) / "images")
        sandbox_id = f"sb-{secrets.token_hex(6)}"
        annotations = {"io.strongbox.egress": egress}
        if disk is not None:  # an image: its disk, not a 9p share (a snapshot needs that)
            annotations[ROOTFS_IMAGE] = str(disk)
        spec = sandbox_spec(
            defaults, rootfs=str(rootfs), hostname=hostname or sandbox_id,
            memory_mib=memory, vcpus=cpus, env=extra_env, timeout_s=timeout_s,
            netns=netns, annotations=annotations)
        bundle = store.root / BUNDLES / sandbox_id
        bundle.mkdir(mode=0o700, parents=True)
        try:
            (bundle / "config.json").write_text(json.dumps(spec))
            _run_detached(store.root, bundle, sandbox_id, config)
        except BaseException:
            shutil.rmtree(bundle, ignore_errors=True)
            raise
        return cls(store, sandbox_id, spec)

    @classmethod
    def connect(cls, sandbox_id: str, *, root: str | Path | None = None) -> Sandbox:
        """The running sandbox ``sandbox_id`` (made by this or another process)."""
        store = StateStore(paths.root_dir(str(root) if root is not None else None))
        try:
            validate_id(sandbox_id)
            record = Container.load(store, sandbox_id).record
            spec = json.loads((store.root / BUNDLES / sandbox_id / "config.json").read_text())
        except (StrongboxError, OSError, ValueError) as exc:
            raise SandboxNotFound(f"sandbox {sandbox_id}: no such sandbox ({exc})") from exc
        if ANNOTATION not in record.annotations:
            raise SandboxNotFound(f"sandbox {sandbox_id}: a container, not an SDK sandbox")
        if not record.monitor_alive or record.effective_status() == sm.STOPPED:
            raise SandboxNotFound(f"sandbox {sandbox_id} has ended (close it to clean up)")
        return cls(store, sandbox_id, spec)

    @staticmethod
    def list(*, root: str | Path | None = None) -> list[SandboxInfo]:
        """Every SDK sandbox under the root, running or ended (not yet closed)."""
        store = StateStore(paths.root_dir(str(root) if root is not None else None))
        found = []
        for sandbox_id in store.ids():
            try:
                record = store.load(sandbox_id)
            except StrongboxError:
                continue  # deleted meanwhile, or not readable: not a sandbox to offer
            if ANNOTATION in record.annotations:
                found.append(SandboxInfo(sandbox_id, str(record.effective_status()),
                                         record.created))
        return found

    # --- work --------------------------------------------------------------------------
    @property
    def socket_path(self) -> Path:
        return self._store.socket_path(self.id)

    @property
    def status(self) -> str:
        try:
            return str(Container.load(self._store, self.id).status())
        except StrongboxError:
            return str(sm.STOPPED)

    def spawn(self, cmd: str | Sequence[str], *, stdin: Input | str = None,
              env: dict[str, str] | None = None, cwd: str | None = None,
              timeout_s: float | None = None, on_stdout: Output | None = None,
              on_stderr: Output | None = None) -> Process:
        """Start ``cmd`` (an argv, or a string for ``/bin/sh -c``) in the background."""
        return Process(self._session(cmd, stdin, env, cwd, on_stdout, on_stderr), timeout_s)

    def run(self, cmd: str | Sequence[str], *, stdin: Input | str = None,
            env: dict[str, str] | None = None, cwd: str | None = None,
            timeout_s: float | None = None, on_stdout: Output | None = None,
            on_stderr: Output | None = None) -> RunResult:
        """Run ``cmd`` to its end; its exit code and output (also streamed to the
        callbacks as it comes). After ``timeout_s`` it is killed and
        :class:`~strongbox.errors.SandboxTimeout` raised with the output so far."""
        session = self._session(cmd, stdin, env, cwd, on_stdout, on_stderr)
        return session.result(timeout_s, what=f"{_shown(cmd)!r}")

    def _session(self, cmd: str | Sequence[str], stdin: Input | str,
                 env: dict[str, str] | None, cwd: str | None, on_stdout: Output | None,
                 on_stderr: Output | None) -> Session:
        if isinstance(cmd, str):
            args = ["/bin/sh", "-c", cmd]
        elif isinstance(cmd, Sequence) and cmd and all(isinstance(a, str) for a in cmd):
            args = list(cmd)
        else:
            raise ConfigError(f"cmd: expected a shell string or a non-empty list of strings, "
                              f"got {cmd!r}")
        if cwd is not None and (not isinstance(cwd, str) or not cwd.startswith("/")):
            raise ConfigError(f"cwd: expected an absolute path in the sandbox, got {cwd!r}")
        process = exec_process(self._spec, args, env=check_env(env), cwd=cwd)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return Session(self.socket_path, {"op": "exec", "process": process}, stdin=data,
                       on_stdout=on_stdout, on_stderr=on_stderr)

    def pause(self) -> None:
        """Freeze every process of the sandbox (they keep their memory, stop running)."""
        self._control(Container.pause)

    def resume(self) -> None:
        self._control(Container.resume)

    def _control(self, verb: Any) -> None:
        try:
            verb(Container.load(self._store, self.id))
        except StrongboxError as exc:
            if not self._store.exists(self.id):
                raise SandboxNotFound(f"sandbox {self.id} was closed") from exc
            raise SandboxError(f"sandbox {self.id}: {exc}") from exc

    def close(self) -> None:
        """End the sandbox and remove everything it held; fine if it has ended already."""
        try:
            force_delete(self._store, self.id)
        except ContainerNotFound:
            pass  # closed before
        finally:
            shutil.rmtree(self._store.root / BUNDLES / self.id, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Sandbox({self.id!r})"


def _positive_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return value


def _egress(network: object, netns: str | None) -> str:
    """``network`` as the egress annotation: "none", "all" or comma-separated CIDRs."""
    import ipaddress

    if network == "none":
        if netns is not None:
            raise ConfigError('netns: given, but network is "none" (the sandbox has only lo)')
        return "none"
    if netns is None:
        raise ConfigError(f"network={network!r}: needs netns, the path of the network "
                          "namespace whose interface the sandbox gets")
    if network == "all":
        return "all"
    if isinstance(network, str) or not isinstance(network, Sequence) or not network:
        raise ConfigError(f"network: expected \"none\", \"all\" or a list of CIDRs, got "
                          f"{network!r}")
    try:
        return ",".join(str(ipaddress.ip_network(n, strict=False)) for n in network)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"network: {exc}") from None


def _rootfs(image: Path, cache: Path) -> tuple[Path, dict[str, Any], Path | None]:
    """The root filesystem of ``image``, its run defaults (none for a directory) and its
    file system image in the cache (none for a directory: it is shared over 9p)."""
    from strongbox.image import IMAGE_FILE, prepare

    if image.is_dir() and not (image / "oci-layout").exists() and \
            not (image / "index.json").exists():
        return image.absolute(), {}, None
    if not image.exists():
        raise ConfigError(f"image {image}: no such file or directory")
    rootfs, defaults = prepare(image.absolute(), cache)
    return rootfs, defaults, rootfs.parent / IMAGE_FILE


def _run_detached(root: Path, bundle: Path, sandbox_id: str, config: str | Path | None) -> None:
    """``strongbox run --detach --overlay``: the sandbox's monitor, a process of its own.

    Its stdio is the container's: /dev/null in and out, and a file for stderr, which
    is also where the command line's one error line lands if the start fails.
    """
    argv = [sys.executable, "-m", "strongbox", *(["--config", str(config)] if config else []),
            "--root", str(root), "run", "--detach", "--overlay", "--bundle", str(bundle),
            sandbox_id]
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=err, timeout=_CREATE_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            with contextlib.suppress(StrongboxError):
                force_delete(StateStore(root), sandbox_id)
            raise SandboxError(f"sandbox {sandbox_id}: not started within "
                               f"{_CREATE_TIMEOUT_S:g}s") from exc
        if proc.returncode != 0:
            err.seek(0)
            lines = [ln for ln in err.read().decode(errors="replace").splitlines()
                     if ln.strip() and "using TCG emulation" not in ln]
            reason = lines[-1].removeprefix("strongbox: error: ") if lines else \
                f"exit status {proc.returncode}"
            raise SandboxError(f"sandbox {sandbox_id}: cannot start: {reason}")


def _shown(cmd: str | Sequence[str]) -> str:
    return cmd if isinstance(cmd, str) else shlex.join(cmd)

