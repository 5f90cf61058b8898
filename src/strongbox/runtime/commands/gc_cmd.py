"""``strongbox gc [--dry-run] [--json]``: remove what dead sandboxes left on this host."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from strongbox.runtime import paths


def register(sub: Any) -> None:
    p = sub.add_parser("gc", help="remove what dead sandboxes left (processes, mounts, "
                       "cgroups, redirects, state)",
                       description="Find what sandboxes whose owner (a monitor, a shim, a pool "
                       "keeper) died left under the root and its client roots, and the jail "
                       "cgroups no process is in; remove it and print what was removed. A "
                       "live sandbox is never touched.")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_gc)


def cmd_gc(args: argparse.Namespace) -> int:
    from strongbox.runtime import gc

    found = gc.find(paths.root_dir(args.root))
    results = [(leftover, None if args.dry_run else gc.remove(leftover)) for leftover in found]
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "leftovers": [
            {"kind": lo.kind, "name": lo.name, "root": str(lo.root) if lo.root else None,
             "parts": list(lo.parts), "removed": done} for lo, done in results]}, indent=2))
    else:
        for leftover, done in results:
            verb = "would remove" if done is None else "removed" if done else "could not remove"
            sys.stdout.write(f"{verb} {leftover.kind} {leftover.name}: "
                             f"{'; '.join(leftover.parts)}\n")
        if not results:
            sys.stdout.write("nothing to remove\n")
    return 0 if all(done is not False for _, done in results) else 1
