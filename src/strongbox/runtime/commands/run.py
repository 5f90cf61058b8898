"""``strongbox run``: create, start and wait for a container in a microVM, in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from strongbox.config import Config, load_config
from strongbox.errors import ContainerStartError
from strongbox.oci.sizing import vm_size
from strongbox.oci.spec import load_bundle
from strongbox.runtime import paths, tty
from strongbox.runtime.ids import validate_id
from strongbox.runtime.relay import StdioRelay
from strongbox.sandbox.sandbox import Sandbox
from strongbox.sandbox.shares import container_shares

#: Signals `run` passes on to the container, as runc does for a foreground run.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)
#: How long to keep draining output after the process exited.
OUTPUT_GRACE = 5.0


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="create and run a container in a microVM")
    run.add_argument("id", metavar="ID", help="container id")
    run.add_argument("--bundle", "-b", default=".", help="path to the OCI bundle (default .)")
    run.add_argument("--overlay", action="store_true",
                     help="share the rootfs read-only; keep writes in guest memory")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    container_id = validate_id(args.id)
    spec, rootfs = load_bundle(args.bundle)
    overlay = bool(args.overlay or config.runtime.overlay)
    return asyncio.run(run_container(
        config, container_id, spec, rootfs, overlay=overlay,
        root=paths.root_dir(args.root), state_dir=paths.state_dir(args.state_dir, config),
    ))


async def run_container(config: Config, container_id: str, spec: dict[str, Any], rootfs: str,
                        *, overlay: bool, root: Path, state_dir: Path) -> int:
    """The whole foreground lifecycle; returns the exit code `run` exits with."""
    qemu = config.hypervisor.qemu
    memory, vcpus = vm_size(spec, default_memory_mib=qemu.default_memory,
                            default_vcpus=qemu.default_vcpus,
                            memory_margin_mib=qemu.memory_margin,
                            max_vcpus=os.cpu_count() or 1)
    shares, mounts = container_shares(container_id, spec, rootfs, overlay)
    sandbox = Sandbox(config, sandbox_id=container_id, root=root, state_dir=state_dir)
    loop = asyncio.get_running_loop()
    terminal = bool(spec["process"].get("terminal"))
    interactive = terminal and tty.is_terminal(0)
    with ExitStack() as cleanup:
        try:
            await sandbox.start(memory_mib=memory, vcpus=vcpus, shares=shares)
            if interactive and (size := tty.window_size(0)):
                spec["process"]["consoleSize"] = {"height": size[0], "width": size[1]}
            io = await sandbox.create_container(container_id, spec, mounts=mounts,
                                                overlay=overlay, stdin=True)
            relay = StdioRelay(io)
            _forward_signals(loop, sandbox, container_id, terminal, cleanup)
            if interactive:
                cleanup.enter_context(tty.raw_mode(0))
            relay.start()
            try:
                await sandbox.start_container(container_id)
            except ContainerStartError as exc:
                sys.stderr.write(f"strongbox: error: {exc}\n")
                return exc.exit_code
            status = await sandbox.wait_process(container_id)
            await relay.finish(OUTPUT_GRACE)
            return status.code
        finally:
            try:
                await sandbox.stop()
            finally:
                await sandbox.destroy()


def _forward_signals(loop: asyncio.AbstractEventLoop, sandbox: Sandbox, container_id: str,
                     terminal: bool, cleanup: ExitStack) -> None:
    def forward(signum: int) -> None:
        loop.create_task(_quietly(sandbox.signal_process(container_id, signum)))

    def resize() -> None:
        if size := tty.window_size(0):
            loop.create_task(_quietly(sandbox.resize_pty(container_id, *size)))

    for signum in FORWARDED:
        loop.add_signal_handler(signum, forward, signum)
        cleanup.callback(loop.remove_signal_handler, signum)
    if terminal:
        loop.add_signal_handler(signal.SIGWINCH, resize)
    else:
        loop.add_signal_handler(signal.SIGWINCH, forward, signal.SIGWINCH)
    cleanup.callback(loop.remove_signal_handler, signal.SIGWINCH)


async def _quietly(coro: Any) -> None:
    """Signals may race with the process exiting; that is not an error."""
    try:
        await coro
    except Exception:
        pass
