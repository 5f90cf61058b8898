"""Where strongbox keeps things on the host, and how each location is chosen.

* state directory (persistent: built guest assets, build cache):
  ``--state-dir`` > ``$STRONGBOX_STATE_DIR`` > ``[runtime] state_dir`` >
  ``/var/lib/strongbox``;
* root (volatile, like runc's ``--root``: one directory per running VM or
  container): ``--root`` > ``$STRONGBOX_ROOT`` > ``/run/strongbox``.
"""

from __future__ import annotations

import os
from pathlib import Path

from strongbox.config import Config

DEFAULT_STATE_DIR = Path("/var/lib/strongbox")
DEFAULT_ROOT = Path("/run/strongbox")


def state_dir(cli_value: str | None, config: Config) -> Path:
    value = cli_value or os.environ.get("STRONGBOX_STATE_DIR") or config.runtime.state_dir
    return Path(value).absolute() if value else DEFAULT_STATE_DIR


def root_dir(cli_value: str | None) -> Path:
    value = cli_value or os.environ.get("STRONGBOX_ROOT")
    return Path(value).absolute() if value else DEFAULT_ROOT
