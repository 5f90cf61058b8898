"""``strongbox install``: register strongbox with containerd, podman and docker (or undo it).

The library is imported only when the command runs: every runc-style call
(``create``, ``start``, ``kill``...) builds this parser too, and should not
pay for TOML and JSON editing it never does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ENGINES = ("containerd", "podman", "docker")
KUBERNETES = "kubernetes"
# Defaults shown in --help; the library's own constants (checked equal by the tests).
DEFAULTS = {
    "containerd": "/etc/containerd/config.toml",
    "podman": "/etc/containers/containers.conf",
    "docker": "/etc/docker/daemon.json",
}


def _only(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in (*ENGINES, KUBERNETES)]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {', '.join(unknown)}: choose from {', '.join((*ENGINES, KUBERNETES))}")
    return names


def register(sub: Any) -> None:
    p = sub.add_parser("install", help="register strongbox with containerd, podman and docker",
                       description="Add strongbox as a runtime to each engine's configuration, "
                       "changing nothing else in the files; --uninstall takes exactly that out.")
    for engine in ENGINES:
        p.add_argument(f"--{engine}-config", type=Path, metavar="PATH",
                       help=f"default {DEFAULTS[engine]}")
    p.add_argument("--only", type=_only, default=ENGINES, metavar="LIST",
                   help="comma-separated: containerd,podman,docker (default all three); "
                   "'kubernetes' prints the RuntimeClass")
    p.add_argument("--runtime-path", metavar="PATH",
                   help="the strongbox executable podman and docker run (default: this one)")
    p.add_argument("--shim-path", metavar="PATH",
                   help="the containerd-shim-strongbox-v2 containerd runs "
                   "(default: next to the strongbox executable)")
    p.add_argument("--uninstall", action="store_true", help="remove what install added")
    p.add_argument("--dry-run", action="store_true", help="print the diffs, write nothing")
    p.add_argument("--kubernetes", action="store_true",
                   help="also print the Kubernetes RuntimeClass manifest")
    p.set_defaults(func=cmd_install)


def cmd_install(args: argparse.Namespace) -> int:
    from strongbox.install import apply, kubernetes
    from strongbox.install.plan import Options, make_plan

    paths = {f"{engine}_config": getattr(args, f"{engine}_config") for engine in ENGINES}
    options = Options(
        **{name: path for name, path in paths.items() if path is not None},
        tools=tuple(name for name in args.only if name != KUBERNETES),
        runtime_path=args.runtime_path,
        shim_path=args.shim_path,
        uninstall=args.uninstall,
    )
    plan = make_plan(options)
    apply(plan.changes, dry_run=args.dry_run)
    for note in plan.notes:
        print(note)
    if args.kubernetes or KUBERNETES in args.only:
        if args.uninstall:
            print(kubernetes.delete_hint())
        else:
            sys.stdout.write("---\n" if plan.changes else "")
            sys.stdout.write(kubernetes.runtime_class())
    return 0
