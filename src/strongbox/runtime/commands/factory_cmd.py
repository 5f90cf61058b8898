"""``strongbox factory init | status | destroy``: the VM template."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from strongbox.config import load_config
from strongbox.runtime import paths


def register(sub: Any) -> None:
    factory = sub.add_parser("factory", help="manage the VM template clones start from")
    verbs = factory.add_subparsers(dest="verb", metavar="VERB", parser_class=type(factory))
    verbs.required = True
    init = verbs.add_parser("init", help="boot, pause and save a fresh VM template")
    init.add_argument("--json", action="store_true", help="print the template as JSON")
    init.set_defaults(func=cmd_init)
    status = verbs.add_parser("status", help="show the template and whether it is fresh")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=cmd_status)
    destroy = verbs.add_parser("destroy", help="remove the VM template")
    destroy.set_defaults(func=cmd_destroy)


def _factory(args: argparse.Namespace) -> Any:
    from strongbox.sandbox.factory import Factory

    config = load_config(args.config)
    return Factory(config, paths.state_dir(args.state_dir, config), paths.root_dir(args.root))


def cmd_init(args: argparse.Namespace) -> int:
    factory = _factory(args)

    def say(message: str) -> None:
        sys.stderr.write(f"factory: {message}\n")
        sys.stderr.flush()

    template = asyncio.run(factory.init(progress=None if args.json else say))
    info = template.describe()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"template {info['path']} ({info['inputs_hash'][:16]}), device state "
              f"{info['state_file_bytes']:,} bytes, RAM in use "
              f"{info['memory_resident_bytes'] / 2**20:.1f} MiB")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status = _factory(args).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    if not status["present"]:
        print(f"no template at {status['path']} (run `strongbox factory init`)")
        return 0
    inputs = status["inputs"]
    freshness = "fresh" if status["fresh"] else \
        "STALE: " + ", ".join(status["stale_because"]) + " changed"
    print(f"template   {status['path']} ({freshness})")
    print(f"inputs     {status['inputs_hash'][:16]}: {inputs['memory_mib']} MiB, "
          f"{inputs['vcpus']} vCPU, {inputs['accelerator']}, kernel {inputs['kernel']}")
    print(f"sizes      memory file {status['memory_file_bytes'] / 2**20:.0f} MiB "
          f"({status['memory_resident_bytes'] / 2**20:.1f} MiB in use), device state "
          f"{status['state_file_bytes']:,} bytes")
    print(f"age        {status['age_s']:.0f} s")
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    removed = _factory(args).destroy()
    print("template removed" if removed else "no template to remove")
    return 0
