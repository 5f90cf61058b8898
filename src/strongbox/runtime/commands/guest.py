"""``strongbox guest build | info | boot``: the guest image and a diagnostic boot."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from strongbox.config import load_config
from strongbox.guest.assets import AssetStore
from strongbox.runtime import paths


def register(sub: Any) -> None:
    guest = sub.add_parser("guest", help="build and inspect the microVM guest")
    verbs = guest.add_subparsers(dest="verb", metavar="VERB", parser_class=type(guest))
    verbs.required = True

    build = verbs.add_parser("build", help="build the guest kernel and initrd (cached)")
    build.add_argument("--jobs", "-j", type=int, help="parallel compile jobs (default: CPUs)")
    build.add_argument("--json", action="store_true", help="print the result as JSON")
    build.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    build.set_defaults(func=cmd_build)

    info = verbs.add_parser("info", help="show the built guest assets")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_info)

    boot = verbs.add_parser("boot", help="boot a VM, report what the guest sees, shut it down")
    boot.add_argument("--json", action="store_true", help="print one JSON object")
    boot.add_argument("--memory", type=int, help="guest RAM in MiB")
    boot.add_argument("--vcpus", type=int, help="number of vCPUs")
    boot.add_argument("--kernel", help="guest kernel (default: the built one)")
    boot.add_argument("--initrd", help="guest initrd (default: the built one)")
    boot.add_argument("--timeout", type=float, help="seconds to wait for the agent")
    boot.add_argument("--accel", choices=("auto", "kvm", "tcg"), help="accelerator")
    boot.add_argument("--machine", choices=("microvm", "q35"),
                      help="machine type (default: the configured machine_type)")
    boot.set_defaults(func=cmd_boot)


def cmd_build(args: argparse.Namespace) -> int:
    from strongbox.guest.build import build_guest  # rich's import is only worth it here
    from strongbox.guest.progress import Reporter

    config = load_config(args.config)
    reporter = Reporter(quiet=args.quiet or args.json)
    result = build_guest(paths.state_dir(args.state_dir, config), reporter, jobs=args.jobs)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    state = paths.state_dir(args.state_dir, config)
    current = AssetStore(state).current()
    data: dict[str, Any] = {"state_dir": str(state)}
    for kind in ("kernel", "initrd"):
        asset = current.get(kind)
        data[kind] = asset.to_json() if asset else None
        if asset:
            data[kind]["present"] = asset.path.is_file()
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(f"state dir: {state}")
    for kind in ("kernel", "initrd"):
        entry = data[kind]
        if entry is None:
            print(f"{kind:7} not built (run `strongbox guest build`)")
            continue
        print(f"{kind:7} {entry['path']}")
        print(f"        size {entry['size']:,} bytes, sha256 {entry['sha256']}")
        print(f"        inputs {entry['inputs_hash'][:16]}, built in {entry['build_seconds']}s"
              + ("" if entry["present"] else "  (FILE MISSING)"))
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    from strongbox.sandbox.diagnostic import boot_and_report

    config = load_config(args.config)
    report = boot_and_report(
        config,
        state_dir=paths.state_dir(args.state_dir, config),
        root=paths.root_dir(args.root),
        memory_mib=args.memory,
        vcpus=args.vcpus,
        kernel=args.kernel,
        initrd=args.initrd,
        timeout=args.timeout,
        accelerator=args.accel,
        machine_type=args.machine,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_boot(report)
    return 0


def _print_boot(report: dict[str, Any]) -> None:
    out = sys.stdout
    out.write(f"guest kernel   {report['kernel_release']} ({report['machine']}, "
              f"{report['accelerator']}, "
              f"{report['cpus']} vCPU, {report['mem_total_kib'] // 1024} MiB)\n")
    out.write(f"memory         used {report['mem_used_kib'] / 1024:.1f} MiB, available "
              f"{report['mem_available_kib'] / 1024:.1f} MiB\n")
    out.write(f"agent          strongbox-agent {report['agent_version']} on Python "
              f"{report['python_version']}, RSS {report['agent_rss_kib'] / 1024:.1f} MiB\n")
    out.write("timeline (seconds since QEMU was launched)\n")
    for label, key in (("QEMU started", "qemu_started_s"), ("kernel running", "kernel_running_s"),
                       ("agent started", "agent_started_s"), ("agent ready", "agent_ready_s"),
                       ("powered off", "stopped_s")):
        if key in report:
            out.write(f"  {report[key]:7.3f}  {label}\n")
