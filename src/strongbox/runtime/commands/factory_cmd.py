"""``strongbox factory init | status | destroy | serve``: the VM template and the warm pool."""

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
    serve = verbs.add_parser("serve", help="run the warm VM pool ([factory] vm_cache_number)")
    serve.add_argument("--size", type=int, default=None,
                       help="warm VMs to keep (default: [factory] vm_cache_number)")
    serve.set_defaults(func=cmd_serve)


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


def _pool_status(args: argparse.Namespace) -> dict[str, Any] | None:
    from strongbox.sandbox.pool.server import query_status

    return asyncio.run(query_status(load_config(args.config)))


def _print_pool(pool: dict[str, Any] | None, configured: int) -> None:
    if pool is None:
        print(f"pool       not running ([factory] vm_cache_number = {configured}; "
              "`strongbox factory serve` runs it)")
        return
    refill = f"{pool['refill_s']:.2f} s per VM" if pool["refill_s"] is not None else "none yet"
    print(f"pool       pid {pool['pid']}: {pool['free']} free of {pool['size']}, "
          f"{pool['warming']} warming, {pool['in_use']} in use ({pool['memory_mib']} MiB, "
          f"{pool['vcpus']} vCPU)")
    print(f"refill     {refill}, {pool['made_last_minute']} in the last minute; "
          f"{pool['claims']} claims, {pool['misses']} missed, {pool['failures']} failed")


def cmd_status(args: argparse.Namespace) -> int:
    status = _factory(args).status()
    pool = _pool_status(args)
    if args.json:
        print(json.dumps({**status, "pool": pool}, indent=2))
        return 0
    configured = load_config(args.config).factory.vm_cache_number
    if not status["present"]:
        print(f"no template at {status['path']} (run `strongbox factory init`)")
        _print_pool(pool, configured)
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
    _print_pool(pool, configured)
    return 0


def cmd_destroy(args: argparse.Namespace) -> int:
    removed = _factory(args).destroy()
    print("template removed" if removed else "no template to remove")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from strongbox.config import MAX_VM_CACHE
    from strongbox.errors import ConfigError
    from strongbox.sandbox.pool.server import Pool

    config = load_config(args.config)
    size = config.factory.vm_cache_number if args.size is None else args.size
    if not 1 <= size <= MAX_VM_CACHE:
        raise ConfigError(f"--size / factory.vm_cache_number: expected 1..{MAX_VM_CACHE} warm "
                          f"VMs, got {size}")
    pool = Pool(config, state_dir=paths.state_dir(args.state_dir, config),
                root=paths.root_dir(args.root), size=size, config_path=args.config,
                debug=args.debug)

    def ready(path: object) -> None:
        sys.stderr.write(f"factory: serving {size} warm VMs on {path}\n")
        sys.stderr.flush()

    asyncio.run(pool.serve(on_ready=ready))
    return 0
