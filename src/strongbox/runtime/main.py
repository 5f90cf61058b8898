"""The ``strongbox`` command: global flags, subcommand dispatch, one-line errors.

Commands are thin: each module under ``runtime.commands`` declares its
arguments and calls into the library. Every error a user can cause is a
:class:`StrongboxError` and becomes exactly one ``strongbox: error: ...``
line and a non-zero exit; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys

from strongbox import __version__, log
from strongbox.errors import StrongboxError
from strongbox.ids import validate_id

TYPE_CHECKING = False  # checkers take this as True; `typing` costs every command milliseconds
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

EXIT_ERROR = 1
EXIT_USAGE = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"strongbox: error: {self.prog.removeprefix('strongbox ')}: {message}\n")
        sys.exit(EXIT_USAGE)


VERSION_TEXT = f"strongbox version {__version__}\nspec: 1.0.2"


#: Every subcommand, in the order ``--help`` lists them: name -> (the module under
#: ``strongbox.runtime.commands`` that declares it, its help line, its aliases). The
#: help lines are the ones the modules pass to ``add_parser`` (a test keeps them equal).
#: Only the chosen command's module is imported: ``state`` must not pay for ``factory``'s
#: asyncio or ``guest``'s asset store (issue 14: a CLI that starts in milliseconds).
COMMANDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "create": ("lifecycle_cmds", "create a container (start it with `start`)", ()),
    "start": ("lifecycle_cmds", "start a created container", ()),
    "run": ("lifecycle_cmds", "create and start a container, by default in the foreground", ()),
    "delete": ("lifecycle_cmds", "delete a container and everything it holds", ()),
    "kill": ("control_cmds", "send a signal to a container's process (default TERM)", ()),
    "pause": ("control_cmds", "freeze every process of a container", ()),
    "resume": ("control_cmds", "thaw a paused container", ()),
    "update": ("control_cmds", "change a running container's resource limits", ()),
    "exec": ("exec_cmd", "run a process in a running container", ()),
    "state": ("inspect_cmds", "print the OCI state of a container as JSON", ()),
    "list": ("inspect_cmds", "list containers", ("ls",)),
    "ps": ("inspect_cmds", "list the processes of a container", ()),
    "events": ("inspect_cmds", "stream statistics and OOM events as JSON lines", ()),
    "spec": ("spec_cmds", "write a default config.json, as runc does", ()),
    "features": ("spec_cmds", "print the runtime-spec features document", ()),
    "guest": ("guest", "build and inspect the microVM guest", ()),
    "install": ("install_cmd", "register strongbox with containerd, podman and docker", ()),
    "factory": ("factory_cmd", "manage the VM template clones start from", ()),
    "check": ("check_cmd", "check that this host can run strongbox, and how", ()),
    "metrics": ("metrics_cmd", "serve Prometheus metrics of every sandbox on the host", ()),
    "debug": ("debug_cmd", "look into a sandbox's VM (its console log, a shell in it)", ()),
    "gc": ("gc_cmd", "remove what dead sandboxes left (processes, mounts, cgroups, redirects, "
           "state)", ()),
}

#: Stands in for a subcommand's parser until its module is imported.
_PENDING = argparse.ArgumentParser(add_help=False)


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose parsers are built when chosen, by importing their module then.

    argparse checks the command word against every name (so ``--help``, a typo's
    "invalid choice" and its list read as they always did); only the module of
    the command that runs is imported and its ``register`` called.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._modules: dict[str, str] = {}

    def add_command(self, name: str, module: str, help_text: str,
                    aliases: tuple[str, ...]) -> None:
        self._choices_actions.append(self._ChoicesPseudoAction(name, aliases, help_text))
        for each in (name, *aliases):
            self._name_parser_map[each] = _PENDING
            self._modules[each] = module

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        """A module's ``register`` declaring a command: replace the stand-in, listed already."""
        if self._name_parser_map.get(name) is _PENDING:
            kwargs.pop("help", None)
            for each in (name, *kwargs.get("aliases", ())):
                self._name_parser_map.pop(each, None)
        return super().add_parser(name, **kwargs)

    def load(self, name: str) -> None:
        """Import the module that declares ``name`` and let it register its commands."""
        module = f"strongbox.runtime.commands.{self._modules[name]}"
        __import__(module)
        sys.modules[module].register(self)

    def load_all(self) -> None:
        for name in list(self._modules):
            if self._name_parser_map.get(name) is _PENDING:
                self.load(name)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if self._name_parser_map.get(values[0]) is _PENDING:
            self.load(values[0])
        super().__call__(parser, namespace, values, option_string)


def build_parser(load_all: bool = False) -> ArgumentParser:
    """The whole command line; ``load_all`` builds every subcommand's parser up front."""
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser,
                                action=_Commands)
    assert isinstance(sub, _Commands)
    sub.required = True
    for name, (module, help_text, aliases) in COMMANDS.items():
        sub.add_command(name, module, help_text, aliases)
    if load_all:
        sub.load_all()
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log.setup(debug=args.debug, log_file=args.log, log_format=args.log_format)
    if args.debug:
        from strongbox import timeline

        timeline.phase("cli", "cli start", timeline.since_process_start(), args.command)
    if args.systemd_cgroup:
        import logging

        logging.getLogger("strongbox").info(
            "--systemd-cgroup changes nothing: the form of linux.cgroupsPath decides")
    try:
        if isinstance(getattr(args, "id", None), str):  # every verb on a container, up front
            validate_id(args.id)
        return int(args.func(args) or 0)
    except StrongboxError as exc:
        if args.debug:
            import traceback

            traceback.print_exc()
        log.error(str(exc))
        code = getattr(exc, "exit_code", EXIT_ERROR)  # e.g. 127 when exec finds no binary
        return code if isinstance(code, int) and code > 0 else EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
