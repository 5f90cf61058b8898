"""``strongbox debug log ID``: look into a sandbox's VM from the host.

``log`` prints the guest console of the VM a container or sandbox runs in (its
run directory's ``console.log``, capped by ``console_log_size``), for the CLI's
containers and the shim's sandboxes alike: the VM is found by name under the
root and its client roots (a shim names its VM ``<namespace>-<sandbox id>``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from strongbox.errors import ContainerNotFound, StrongboxError
from strongbox.runtime import paths

VMS = "vms"


def register(sub: Any) -> None:
    debug = sub.add_parser("debug", help="look into a sandbox's VM (its console log)")
    verbs = debug.add_subparsers(dest="verb", metavar="VERB", parser_class=type(debug))
    verbs.required = True
    log = verbs.add_parser("log", help="print the guest console log of the VM ID runs in")
    log.add_argument("id", metavar="ID", help="a container or sandbox id")
    log.set_defaults(func=cmd_log)


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
