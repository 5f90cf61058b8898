"""The ``strongbox`` command: global flags, subcommand dispatch, one-line errors.

Commands are thin: each module under ``runtime.commands`` declares its
arguments and calls into the library. Every error a user can cause is a
:class:`StrongboxError` and becomes exactly one ``strongbox: error: ...``
line and a non-zero exit; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from strongbox import __version__, log
from strongbox.errors import StrongboxError

EXIT_ERROR = 1
EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"strongbox: error: {self.prog.removeprefix('strongbox ')}: {message}\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> ArgumentParser:
    from strongbox.runtime.commands import guest, run

    parser = ArgumentParser(prog="strongbox", description="Secure containers in microVMs.")
    parser.add_argument("--version", action="version", version=f"strongbox version {__version__}")
    parser.add_argument("--root", help="directory for runtime state (default /run/strongbox)")
    parser.add_argument("--state-dir", help="directory for guest assets and caches "
                        "(default /var/lib/strongbox)")
    parser.add_argument("--config", help="configuration file (default "
                        "/etc/strongbox/config.toml)")
    parser.add_argument("--debug", action="store_true", help="verbose output and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    guest.register(sub)
    run.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log.setup(debug=args.debug)
    try:
        return int(args.func(args) or 0)
    except StrongboxError as exc:
        if args.debug:
            traceback.print_exc()
        sys.stderr.write(f"strongbox: error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
