"""Lifecycle creates containers: in a background monitor (create, run -d) or the foreground.

Both paths claim the id in the state store first (the record is built aside
and renamed into place: all of it or nothing, even on a full root), build a
:class:`~strongbox.runtime.monitor.Monitor`, and make sure that a failure at
any step leaves no record, no VM and no run directory behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.errors import ConfigError, ContainerStartError, StrongboxError
from strongbox.ids import validate_id
from strongbox.oci.spec import load_bundle
from strongbox.runtime import daemon, ownerns, tty
from strongbox.runtime import state as st
from strongbox.runtime.console import make_controlling, send_console
from strongbox.runtime.monitor import Monitor, Stdio
from strongbox.sandbox.rundir import collect_stale
from strongbox.sandbox.sandbox import ExitStatus


def load(container_id: str, bundle: str, overlay: bool
         ) -> tuple[st.ContainerState, dict[str, Any]]:
    """Validate the id and the bundle; the record is not stored yet."""
    validate_id(container_id)
    spec, rootfs = load_bundle(bundle)
    record = st.ContainerState(
        id=container_id, bundle=str(Path(bundle).absolute()), rootfs=rootfs,
        annotations=dict(spec.get("annotations") or {}),
        terminal=bool(spec["process"].get("terminal")), overlay=overlay,
        owner=_owner(),
    )
    return record, spec


def _owner() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def check_console(record: st.ContainerState, console_socket: str | None, detach: bool) -> None:
    """runc's rules for terminals of detached containers."""
    if record.terminal and detach and not console_socket:
        raise ConfigError("--console-socket: required for a detached container with "
                          "process.terminal true (the caller must receive the pty master)")
    if console_socket and not record.terminal:
        raise ConfigError("--console-socket: given, but process.terminal is false")


def create_detached(config: Config, store: st.StateStore, record: st.ContainerState,
                    spec: dict[str, Any], *, state_dir: Path, console_socket: str | None,
                    pid_file: str | None, start: bool) -> int:
    """``create`` / ``run --detach``: returns the monitor's pid once created (and started)."""
    store.create(record)

    async def main(notify: Any, inherited: tuple[int, int, int]) -> ExitStatus:
        if console_socket:
            slave = send_console(console_socket)
            make_controlling(slave)
            for fd in inherited:
                os.close(fd)
            stdio = Stdio(slave, slave, slave, console=True)
        else:
            stdio = Stdio(*inherited)
        ownerns.keep_host_netns()  # its hooks run there once it joined the sandbox's
        monitor = Monitor(config, store, record, spec, state_dir=state_dir, stdio=stdio)
        try:
            await monitor.create()
            monitor.forward_signals(terminal_resize=stdio.console)
            if start:
                await monitor.start()
            notify("ok")
            return await monitor.wait()
        except ContainerStartError as exc:
            notify(f"error: {exc}")
            return ExitStatus(exc.exit_code, None)
        finally:
            await monitor.teardown()

    try:
        return daemon.spawn(main, pid_file=pid_file)
    except BaseException:
        store.remove(record.id)
        collect_stale(store.root)  # what a monitor killed mid-create left behind
        raise


async def run_foreground(config: Config, store: st.StateStore, record: st.ContainerState,
                         spec: dict[str, Any], *, state_dir: Path, keep: bool = False) -> int:
    """``run``: the CLI itself is the monitor; the container is deleted when it exits
    (unless ``keep``, as runc's ``--keep``)."""
    store.create(record)
    interactive = record.terminal and tty.is_terminal(0)
    if interactive and (size := tty.window_size(0)):
        spec["process"]["consoleSize"] = {"height": size[0], "width": size[1]}
    ownerns.keep_host_netns()  # its hooks run there once it joined the sandbox's
    monitor = Monitor(config, store, record, spec, state_dir=state_dir, stdio=Stdio(0, 1, 2))
    try:
        with contextlib.ExitStack() as stack:
            await monitor.create()
            monitor.forward_signals(terminal_resize=interactive)
            if interactive:
                stack.enter_context(tty.raw_mode(0))
            try:
                await monitor.start()
            except ContainerStartError as exc:
                stack.close()
                raise _Exit(exc.exit_code, str(exc)) from None
            status = await monitor.wait()
        return status.code
    finally:
        try:
            await monitor.teardown()
        finally:
            if not keep:
                store.remove(record.id)


class _Exit(StrongboxError):
    """A start failure with the exit status runc-compatible runtimes use."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = code


def run_foreground_sync(*args: Any, **kwargs: Any) -> int:
    try:
        return asyncio.run(run_foreground(*args, **kwargs))
    except _Exit as exc:
        from strongbox import log

        log.error(str(exc))
        return exc.exit_code
