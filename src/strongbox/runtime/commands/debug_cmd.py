"""``strongbox debug log|console ID``: look into a sandbox's VM from the host.

``console`` opens a shell in the guest outside every container (busybox ``sh`` in the
guest's own namespaces, where the agent is PID 1), when the sandbox was started with
``[agent] debug_console = true``: the VM's owner relays it
(:mod:`strongbox.sandbox.debugconsole`) over its ``owner.sock``; this end puts the
terminal in raw mode and copies bytes both ways until the shell exits. ``log`` prints
the guest console of the VM a container or sandbox runs in (its run directory's
``console.log``, capped by ``console_log_size``), for the CLI's containers and the
shim's sandboxes alike: the VM is found by name under the root and its client roots (a
shim names its VM ``<namespace>-<sandbox id>``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from strongbox.errors import ContainerNotFound, StrongboxError
from strongbox.runtime import paths
from strongbox.runtime.leftovers import VMS


def register(sub: Any) -> None:
    debug = sub.add_parser("debug", help="look into a sandbox's VM (its console log, a shell "
                           "in it)")
    verbs = debug.add_subparsers(dest="verb", metavar="VERB", parser_class=type(debug))
    verbs.required = True
    log = verbs.add_parser("log", help="print the guest console log of the VM ID runs in")
    log.add_argument("id", metavar="ID", help="a container or sandbox id")
    log.set_defaults(func=cmd_log)
    console = verbs.add_parser("console", help="open a shell in the guest VM ID runs in, "
                               "outside the containers ([agent] debug_console = true)")
    console.add_argument("id", metavar="ID", help="a container or sandbox id")
    console.set_defaults(func=cmd_console)


def find_vm(root: Path, name: str) -> Path:
    """The run directory of the VM ``name`` stands for (exactly one, or an error)."""
    found = []
    for each in paths.roots_under(root):
        vms = each / VMS
        found += [p for p in [vms / name] if p.is_dir()]
        try:
            found += sorted(p for p in vms.iterdir() if p.name.endswith(f"-{name}")
                            and p.is_dir())
        except OSError:
            pass
    if not found:
        raise ContainerNotFound(name)
    if len(found) > 1:
        raise StrongboxError(f"{name} names more than one VM: "
                             f"{', '.join(str(p) for p in found)}; pass the full name")
    return found[0]


def cmd_log(args: argparse.Namespace) -> int:
    run_dir = find_vm(paths.root_dir(args.root), args.id)
    try:
        data = (run_dir / "console.log").read_bytes()
    except OSError as exc:
        raise StrongboxError(f"{run_dir}/console.log: {exc.strerror}") from exc
    sys.stdout.buffer.write(data)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    import json
    import os
    import shutil
    import socket

    from strongbox.sandbox.ownersocket import reachable

    run_dir = find_vm(paths.root_dir(args.root), args.id)
    size = shutil.get_terminal_size((80, 24))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        try:
            with reachable(run_dir / "owner.sock") as name:
                sock.connect(name)
            sock.sendall(json.dumps({"op": "console", "rows": size.lines,
                                     "cols": size.columns}).encode() + b"\n")
            first = sock.makefile("rb").readline()
        except OSError as exc:
            raise StrongboxError(f"{args.id}: its owner does not answer ({exc.strerror}); is "
                                 "it running?") from exc
        answer = json.loads(first or b"{}")
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise StrongboxError(f"{args.id}: {error or 'no debug console'}")
        _relay(sock, sys.stdin.fileno(), sys.stdout.fileno())
    finally:
        sock.close()
    os.write(sys.stderr.fileno(), b"\r\n")
    return 0


def _relay(sock: Any, tty_in: int, tty_out: int) -> None:
    """Raw terminal bytes both ways until the shell's end (the socket's EOF)."""
    import os
    import select
    import termios
    import tty

    saved = termios.tcgetattr(tty_in) if os.isatty(tty_in) else None
    if saved is not None:
        tty.setraw(tty_in)
    try:
        watched = [sock, tty_in]
        while True:
            ready, _, _ = select.select(watched, [], [])
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                os.write(tty_out, data)
            if tty_in in ready:
                data = os.read(tty_in, 65536)
                if data:
                    sock.sendall(data)
                else:
                    sock.shutdown(1)  # SHUT_WR: the shell's input ends
                    watched = [sock]
    finally:
        if saved is not None:
            termios.tcsetattr(tty_in, termios.TCSADRAIN, saved)
