"""``containerd-shim-strongbox-v2``: the runtime v2 shim binary containerd runs.

Three modes, as containerd 1.6 invokes them (``runtime/v2/binary.go``):

* ``start``: find or create the shim of this container's pod. The address is
  derived from containerd's address, the namespace and the pod (sandbox id),
  so a pod's containers share one shim and one VM. A new shim is this
  program re-executed without an action, handed the listening socket; the
  address goes to ``<bundle>/address`` and, without a newline, to stdout.
* ``delete``: clean up after a shim that died: whatever of its VM survived
  (its QEMU, its run directory), its socket; print a protobuf DeleteResponse.
* no action: serve ``containerd.task.v2.Task`` over ttrpc until Shutdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strongbox import __version__

log = logging.getLogger("strongbox.shim")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Go-style flags (``-namespace ns``) as containerd passes them; ``--x`` works too."""
    parser = argparse.ArgumentParser(prog="containerd-shim-strongbox-v2", allow_abbrev=False)
    for name, default in (("namespace", ""), ("id", ""), ("address", ""), ("bundle", ""),
                          ("socket", ""), ("publish-binary", "containerd")):
        parser.add_argument(f"-{name}", f"--{name}", default=default,
                            dest=name.replace("-", "_"))
    parser.add_argument("-debug", "--debug", action="store_true")
    parser.add_argument("-v", "--version", action="store_true")
    parser.add_argument("-socket-fd", "--socket-fd", type=int, default=3)
    parser.add_argument("action", nargs="?", default="")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.version:
        print(f"containerd-shim-strongbox-v2 version {__version__}")
        return 0
    if not args.namespace:
        sys.stderr.write("shim namespace cannot be empty\n")
        return 1
    try:
        if args.action == "start":
            return start(args)
        if args.action == "delete":
            return delete(args)
        if args.action:
            sys.stderr.write(f"unknown action {args.action!r}\n")
            return 1
        return serve(args)
    except Exception as exc:  # containerd shows our output as the error: keep it one line
        sys.stderr.write(f"strongbox shim: {exc}\n")
        return 1


def _annotations(bundle: Path) -> dict[str, Any]:
    try:
        spec = json.loads((bundle / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    annotations = spec.get("annotations") if isinstance(spec, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _address(args: argparse.Namespace, bundle: Path) -> str:
    from strongbox.shim.address import grouping, socket_address

    return socket_address(args.address, args.namespace, grouping(args.id, _annotations(bundle)))


def start(args: argparse.Namespace) -> int:
    from strongbox.shim.address import can_connect, listen, write_address, write_pid

    bundle = Path(args.bundle or os.getcwd())
    address = _address(args, bundle)
    if can_connect(address):  # the pod's shim is already serving: join it
        write_address(bundle, address)
        sys.stdout.write(address)
        return 0
    sock = listen(address)
    argv = [sys.executable, "-m", "strongbox.shim.main", "-namespace", args.namespace,
            "-id", args.id, "-address", args.address, "-publish-binary", args.publish_binary,
            "-bundle", str(bundle), "-socket-fd", str(sock.fileno())]
    if args.debug:
        argv.append("-debug")
    child = subprocess.Popen(argv, cwd=bundle, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             pass_fds=(sock.fileno(),), process_group=0)
    sock.close()
    write_pid(bundle, child.pid)
    write_address(bundle, address)
    sys.stdout.write(address)
    return 0


def delete(args: argparse.Namespace) -> int:
    """Clean up after a dead shim; stdout carries a protobuf DeleteResponse."""
    from strongbox.runtime.paths import root_dir
    from strongbox.sandbox.rundir import collect, collect_stale
    from strongbox.shim import convert
    from strongbox.shim.address import can_connect, grouping, remove_socket, sandbox_name
    from strongbox.shim.proto import shim_pb2

    bundle = Path(args.bundle or os.getcwd())
    address = _address(args, bundle)
    if not can_connect(address):  # the pod's shim is dead: its VM must go too
        root = root_dir(None)
        collect(root, sandbox_name(args.namespace, grouping(args.id, _annotations(bundle))))
        collect_stale(root)
    if not can_connect(address):
        remove_socket(address)
    response = shim_pb2.DeleteResponse(exit_status=128 + signal.SIGKILL,
                                       exited_at=convert.timestamp(time.time()))
    sys.stdout.buffer.write(response.SerializeToString())
    sys.stdout.flush()
    return 0


def _setup_logging(bundle: Path, debug: bool) -> None:
    """Log to the ``log`` FIFO containerd opened in the bundle (it relays it)."""
    stream: Any = None
    with contextlib.suppress(OSError):
        fd = os.open(bundle / "log", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(fd, True)
        stream = os.fdopen(fd, "w", buffering=1)
    handler = logging.StreamHandler(stream) if stream else logging.NullHandler()
    handler.setFormatter(logging.Formatter("strongbox-shim %(levelname)s %(message)s"))
    root = logging.getLogger("strongbox")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False


def serve(args: argparse.Namespace) -> int:
    bundle = Path(args.bundle or os.getcwd())
    _setup_logging(bundle, args.debug)
    sock = socket.socket(fileno=args.socket_fd)
    return asyncio.run(_serve(args, sock, bundle))


async def _serve(args: argparse.Namespace, sock: socket.socket, bundle: Path) -> int:
    from strongbox.config import load_config
    from strongbox.runtime.paths import root_dir, state_dir
    from strongbox.shim.address import remove_socket
    from strongbox.shim.events import Publisher, TaskEvents
    from strongbox.shim.service import TaskService
    from strongbox.shim.tasks import TaskManager
    from strongbox.shim.ttrpc.server import Server

    config = load_config()
    publisher = Publisher(os.environ.get("TTRPC_ADDRESS"), args.namespace)
    manager = TaskManager(config, namespace=args.namespace, events=TaskEvents(publisher),
                          root=root_dir(None), state_dir=state_dir(None, config))
    stop = asyncio.Event()
    server = Server()
    TaskService(manager, on_shutdown=stop.set).register(server)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    serving = asyncio.create_task(server.serve(sock))
    log.info("serving %s for %s/%s", _address(args, bundle), args.namespace, args.id)
    await stop.wait()
    await publisher.close()
    await manager.destroy()
    await server.close()
    serving.cancel()
    remove_socket(_address(args, bundle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
