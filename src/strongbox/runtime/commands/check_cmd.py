"""``strongbox check [--json]``: can this host run strongbox, one line per requirement."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from strongbox.config import load_config
from strongbox.runtime import paths

#: How each status reads in the text form (aligned).
_MARKS = {"ok": "ok     ", "warning": "warning", "missing": "MISSING"}


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="check that this host can run strongbox, and how",
                       description="One line per requirement: ok, warning (runs, slower or "
                       "with less) or missing (cannot run containers), with the reason. Exit "
                       "0 when strongbox can run containers here, 1 otherwise.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    from strongbox.hostcheck import check_host

    config = load_config(args.config)
    report = check_host(config, paths.state_dir(args.state_dir, config),
                        paths.root_dir(args.root))
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        width = max(len(f.name) for f in report.findings)
        for f in report.findings:
            sys.stdout.write(f"{_MARKS.get(f.status, f.status)}  {f.name:{width}}  {f.detail}\n")
        sys.stdout.write("strongbox can run containers here\n" if report.passed else
                         "strongbox cannot run containers here: see MISSING above\n")
    return 0 if report.passed else 1
