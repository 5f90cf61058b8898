"""Where strongbox keeps things on the host, and how each location is chosen.

* state directory (persistent: built guest assets, build cache):
  ``--state-dir`` > ``$STRONGBOX_STATE_DIR`` > ``[runtime] state_dir`` >
  ``/var/lib/strongbox``;
* root (volatile, like runc's ``--root``: one directory per running VM or
  container): ``--root`` > ``$STRONGBOX_ROOT`` > ``/run/strongbox``.

A root that exists but is not a directory (or lies under a file) is refused
here, once for every command, as one line naming it: otherwise each verb
would meet it as a different OSError in a different place.
"""

from __future__ import annotations

import os
from pathlib import Path

from strongbox.config import Config
from strongbox.errors import StateDirError

DEFAULT_STATE_DIR = Path("/var/lib/strongbox")
DEFAULT_ROOT = Path("/run/strongbox")


def state_dir(cli_value: str | None, config: Config) -> Path:
    value = cli_value or os.environ.get("STRONGBOX_STATE_DIR") or config.runtime.state_dir
    return Path(value).absolute() if value else DEFAULT_STATE_DIR


def root_dir(cli_value: str | None) -> Path:
    value = cli_value or os.environ.get("STRONGBOX_ROOT")
    root = Path(value).absolute() if value else DEFAULT_ROOT
    check_directory(root)
    return root


def check_directory(root: Path) -> None:
    """Refuse a root that is a file, or whose nearest existing ancestor is one.

    A root that does not exist yet is fine: the first ``create`` makes it.
    """
    for path in (root, *root.parents):
        if not os.path.lexists(path):
            continue
        if not path.is_dir():
            where = "" if path == root else f" {path} is"
            raise StateDirError(f"root {root}:{where} not a directory")
        return
