"""``create``, ``start``, ``run``, ``delete``: bringing containers up and down.

``start`` and ``delete`` are one request to the monitor: they must not pay for
what ``create`` and ``run`` need (the configuration, the sandbox, asyncio), so
:mod:`strongbox.runtime.lifecycle` and the config are imported by those two only.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from strongbox.ids import validate_id
from strongbox.runtime import paths
from strongbox.runtime.container import Container, force_delete
from strongbox.runtime.state import StateStore


def register(sub: Any) -> None:
    create = sub.add_parser("create", help="create a container (start it with `start`)")
    create.add_argument("id", metavar="ID")
    _bundle_options(create)
    create.set_defaults(func=cmd_create)

    start = sub.add_parser("start", help="start a created container")
    start.add_argument("id", metavar="ID")
    start.set_defaults(func=cmd_start)

    run = sub.add_parser("run", help="create and start a container, by default in the "
                                     "foreground")
    run.add_argument("id", metavar="ID")
    _bundle_options(run)
    run.add_argument("--detach", "-d", action="store_true", help="run in the background")
    run.add_argument("--keep", action="store_true",
                     help="keep the stopped container's record after a foreground run")
    run.add_argument("--no-subreaper", action="store_true",
                     help="accepted: the monitor is always the container's waitable parent")
    run.set_defaults(func=cmd_run)

    delete = sub.add_parser("delete", help="delete a container and everything it holds")
    delete.add_argument("id", metavar="ID")
    delete.add_argument("--force", "-f", action="store_true",
                        help="kill a running container first")
    delete.set_defaults(func=cmd_delete)


def _bundle_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", "-b", default=".", help="OCI bundle directory (default .)")
    parser.add_argument("--pid-file", help="write the container's pid here")
    parser.add_argument("--console-socket", help="unix socket that receives the pty master")
    parser.add_argument("--overlay", action="store_true",
                        help="share the rootfs read-only; keep writes in guest memory")
    parser.add_argument("--no-pivot", action="store_true",
                        help="accepted: the guest root is always pivoted")
    parser.add_argument("--no-new-keyring", action="store_true",
                        help="accepted: each container has a whole kernel of its own")
    parser.add_argument("--preserve-fds", type=int, default=0,
                        help="accepted when 0; passing fds into a VM is not supported")


def _prepare(args: argparse.Namespace) -> tuple[Any, ...]:
    from strongbox.config import load_config
    from strongbox.runtime import lifecycle

    validate_id(args.id)  # before any work, as runc (lifecycle.load checks it again)
    config = load_config(args.config)
    overlay = bool(args.overlay or config.runtime.overlay)
    record, spec = lifecycle.load(args.id, args.bundle, overlay)
    if args.preserve_fds:
        from strongbox.errors import ConfigError

        raise ConfigError("--preserve-fds: file descriptors cannot be passed into a VM")
    return config, record, spec, StateStore(paths.root_dir(args.root)), \
        paths.state_dir(args.state_dir, config)


def cmd_create(args: argparse.Namespace) -> int:
    from strongbox.runtime import lifecycle

    config, record, spec, store, state_dir = _prepare(args)
    lifecycle.check_console(record, args.console_socket, detach=True)
    lifecycle.create_detached(config, store, record, spec, state_dir=state_dir,
                              console_socket=args.console_socket, pid_file=args.pid_file,
                              start=False)
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    validate_id(args.id)
    Container.load(StateStore(paths.root_dir(args.root)), args.id).start()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from strongbox.runtime import lifecycle

    config, record, spec, store, state_dir = _prepare(args)
    lifecycle.check_console(record, args.console_socket, detach=args.detach)
    if args.detach:
        lifecycle.create_detached(config, store, record, spec, state_dir=state_dir,
                                  console_socket=args.console_socket, pid_file=args.pid_file,
                                  start=True)
        return 0
    if args.pid_file:
        import os
        from pathlib import Path

        from strongbox.runtime.daemon import write_pid_file

        write_pid_file(Path(args.pid_file), os.getpid())
    sys.stdout.flush()
    return lifecycle.run_foreground_sync(config, store, record, spec, state_dir=state_dir,
                                         keep=args.keep)


def cmd_delete(args: argparse.Namespace) -> int:
    validate_id(args.id)
    store = StateStore(paths.root_dir(args.root))
    if args.force:  # must clear the id even when its record cannot be read
        force_delete(store, args.id)
    else:
        Container.load(store, args.id).delete()
    return 0
