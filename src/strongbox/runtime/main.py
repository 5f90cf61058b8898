"""The ``strongbox`` command: global flags, subcommand dispatch, one-line errors.

Commands are thin: each module under ``runtime.commands`` declares its
arguments and calls into the library. Every error a user can cause is a
:class:`StrongboxError` and becomes exactly one ``strongbox: error: ...``
line and a non-zero exit; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from strongbox import __version__, log
from strongbox.errors import StrongboxError
from strongbox.ids import validate_id

EXIT_ERROR = 1
EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"strongbox: error: {self.prog.removeprefix('strongbox ')}: {message}\n")
        sys.exit(EXIT_USAGE)


VERSION_TEXT = f"strongbox version {__version__}\nspec: 1.0.2"


def build_parser() -> ArgumentParser:
    from strongbox.runtime.commands import (
        control_cmds,
        exec_cmd,
        factory_cmd,
        guest,
        inspect_cmds,
        install_cmd,
        lifecycle_cmds,
        spec_cmds,
    )

    parser = ArgumentParser(prog="strongbox", description="Secure containers in microVMs.")
    parser.add_argument("--version", "-v", action="version", version=VERSION_TEXT)
    parser.add_argument("--root", help="directory for runtime state (default /run/strongbox)")
    parser.add_argument("--log", help="also write log records to this file")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="format of --log records (default text)")
    parser.add_argument("--debug", action="store_true", help="verbose output and tracebacks")
    parser.add_argument("--systemd-cgroup", action="store_true",
                        help="accepted: a container's cgroup lives inside its VM")
    parser.add_argument("--rootless", default="auto", help="accepted for runc compatibility")
    parser.add_argument("--criu", help="accepted: checkpointing is not supported")
    parser.add_argument("--config", help="configuration file (default "
                        "/etc/strongbox/config.toml)")
    parser.add_argument("--state-dir", help="directory for guest assets and caches "
                        "(default /var/lib/strongbox)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    for module in (lifecycle_cmds, control_cmds, exec_cmd, inspect_cmds, spec_cmds, guest,
                   install_cmd, factory_cmd):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log.setup(debug=args.debug, log_file=args.log, log_format=args.log_format)
    if args.debug:
        from strongbox import timeline

        timeline.phase("cli", "cli start", timeline.since_process_start(), args.command)
    if args.systemd_cgroup:
        logging.getLogger("strongbox").info(
            "--systemd-cgroup changes nothing: the form of linux.cgroupsPath decides")
    try:
        if isinstance(getattr(args, "id", None), str):  # every verb on a container, up front
            validate_id(args.id)
        return int(args.func(args) or 0)
    except StrongboxError as exc:
        if args.debug:
            traceback.print_exc()
        log.error(str(exc))
        code = getattr(exc, "exit_code", EXIT_ERROR)  # e.g. 127 when exec finds no binary
        return code if isinstance(code, int) and code > 0 else EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
