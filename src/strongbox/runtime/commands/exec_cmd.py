"""``exec``: run another process in a running container."""

from __future__ import annotations

import argparse
import copy
from typing import Any

from strongbox.errors import ConfigError
from strongbox.ids import validate_id
from strongbox.oci.errors import SpecError
from strongbox.runtime import execclient, paths
from strongbox.runtime.container import Container
from strongbox.runtime.state import StateStore
from strongbox.status import EXEC


def register(sub: Any) -> None:
    ex = sub.add_parser("exec", help="run a process in a running container")
    ex.add_argument("id", metavar="ID")
    ex.add_argument("command", nargs=argparse.REMAINDER, help="command and arguments")
    ex.add_argument("--process", "-p", help="OCI process JSON file (instead of a command)")
    ex.add_argument("--tty", "-t", action="store_true", help="allocate a pseudo-terminal")
    ex.add_argument("--console-socket", help="unix socket that receives the pty master")
    ex.add_argument("--cwd", help="working directory")
    ex.add_argument("--env", "-e", action="append", default=[], help="KEY=value")
    ex.add_argument("--user", "-u", help="UID[:GID]")
    ex.add_argument("--additional-gids", "-g", action="append", type=int, default=[])
    ex.add_argument("--cap", "-c", action="append", default=[], help="add a capability")
    ex.add_argument("--detach", "-d", action="store_true", help="run in the background")
    ex.add_argument("--pid-file", help="write the process's (waitable) pid here")
    ex.add_argument("--no-new-privs", action="store_true", help="set no_new_privs")
    ex.add_argument("--apparmor", help="accepted: not applicable in a VM")
    ex.add_argument("--process-label", help="accepted: not applicable in a VM")
    ex.add_argument("--preserve-fds", type=int, default=0, help="accepted when 0")
    ex.set_defaults(func=cmd_exec)


def read_process_file(path: str) -> dict[str, Any]:
    """The ``--process`` file as a checked OCI process; every problem names the file.

    Read with the one reader of untrusted JSON (size, UTF-8, depth, lone
    surrogates ...) and checked as config.md "Process" says, so the flags applied
    after it meet well-typed fields.
    """
    from strongbox.oci.jsonfile import read_section_file
    from strongbox.oci.spec import validate_process

    return read_section_file(path, "--process", "process", "an OCI process", validate_process)

def _check(container_id: str, process: dict[str, Any], what: str) -> None:
    """The process with the flags applied, validated and sized for the guest, before sending.

    ``what`` names the input in a size error; a field error here comes from the
    flags (a --process file was checked on its own first), so it names ``exec``.
    """
    from strongbox.oci.jsonfile import section_error
    from strongbox.sandbox.plan import check_exec  # here: every other command skips its imports

    try:
        check_exec(container_id, process, what)
    except SpecError as exc:
        raise section_error("exec", "process", exc) from None


def build_process(args: argparse.Namespace, spec_process: dict[str, Any] | None
                  ) -> dict[str, Any]:
    """The OCI process to run: --process, or the container's process with the flags applied.

    ``spec_process`` (the container's, from its validated config.json) is only
    read without --process.
    """
    if args.process:
        process = read_process_file(args.process)
    else:
        command = [a for a in args.command]
        if command[:1] == ["--"]:
            command = command[1:]
        if not command:
            raise ConfigError("exec: a command or --process is required")
        if spec_process is None:
            raise ConfigError("exec: the container's config.json has no process")
        process = copy.deepcopy(spec_process)
        process["args"] = command
        process["terminal"] = bool(args.tty)
    if args.tty:
        process["terminal"] = True
    env = {e.split("=", 1)[0]: e for e in process.get("env") or []}
    for item in args.env:
        if "=" not in item or not item.split("=", 1)[0]:
            raise ConfigError(f"--env: expected KEY=value, got {item!r}")
        env[item.split("=", 1)[0]] = item
    process["env"] = list(env.values())
    if args.cwd:
        process["cwd"] = args.cwd
    if args.user:
        uid, _, gid = args.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise ConfigError(f"--user: expected UID[:GID] as numbers, got {args.user!r}")
        process["user"] = {**process.get("user", {}), "uid": int(uid),
                           "gid": int(gid) if gid else 0}
    if args.additional_gids:
        process.setdefault("user", {"uid": 0, "gid": 0})["additionalGids"] = \
            args.additional_gids
    if args.cap:
        caps = process.setdefault("capabilities", {})
        for cap in args.cap:
            name = cap.upper() if cap.upper().startswith("CAP_") else f"CAP_{cap.upper()}"
            for key in ("bounding", "effective", "permitted"):
                caps.setdefault(key, [])
                if name not in caps[key]:
                    caps[key].append(name)
    if args.no_new_privs:
        process["noNewPrivileges"] = True
    result: dict[str, Any] = process  # validated by the sandbox's exec_process, for both doors
    return result


def cmd_exec(args: argparse.Namespace) -> int:
    validate_id(args.id)
    if args.preserve_fds:
        raise ConfigError("--preserve-fds: file descriptors cannot be passed into a VM")
    # A --process file is read and checked before the container is touched: a bad
    # file is the same error whatever the container's state.
    process = build_process(args, None) if args.process else None
    what = f"--process {args.process}" if args.process else "exec"
    if process is not None:
        _check(args.id, process, what)
    store = StateStore(paths.root_dir(args.root))
    container = Container.load(store, args.id)
    container.require_monitor(EXEC)
    if process is None:
        from strongbox.oci.spec import load_bundle

        spec, _ = load_bundle(container.record.bundle)
        process = build_process(args, spec.get("process"))
        _check(args.id, process, what)
    if process.get("terminal") and args.detach and not args.console_socket:
        raise ConfigError("--console-socket: required for a detached exec with --tty")
    return execclient.exec_process(store, args.id, process, detach=args.detach,
                                   pid_file=args.pid_file, console_socket=args.console_socket)
