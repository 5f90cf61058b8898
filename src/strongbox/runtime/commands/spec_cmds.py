"""``spec`` and ``features``: documents about what strongbox runs."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from strongbox.errors import ConfigError
from strongbox.oci.defaults import default_spec
from strongbox.oci.features import features


def register(sub: Any) -> None:
    spec = sub.add_parser("spec", help="write a default config.json, as runc does")
    spec.add_argument("--bundle", "-b", default=".", help="where to write config.json")
    spec.add_argument("--rootless", action="store_true", help="a spec for a rootless container")
    spec.set_defaults(func=cmd_spec)

    feat = sub.add_parser("features", help="print the runtime-spec features document")
    feat.set_defaults(func=cmd_features)


def cmd_spec(args: argparse.Namespace) -> int:
    path = os.path.join(args.bundle, "config.json")
    if os.path.exists(path):
        raise ConfigError(f"{path} exists: remove it first")
    try:
        with open(path, "x") as f:
            json.dump(default_spec(rootless=args.rootless), f, indent="\t")
            f.write("\n")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    print(json.dumps(features(), indent="    "))
    return 0
