"""Where strongbox keeps things on the host, and how each location is chosen.

* state directory (persistent: built guest assets, build cache):
  ``--state-dir`` > ``$STRONGBOX_STATE_DIR`` > ``[runtime] state_dir`` >
  ``/var/lib/strongbox``;
* root (volatile, like runc's ``--root``: one directory per running VM or
  container): ``--root`` > ``$STRONGBOX_ROOT`` > ``/run/strongbox``. A
  ``--root`` that is runc's own directory (see :func:`is_runc_root`) is not
  written to: strongbox keeps that client's state in a root of its own,
  ``<$STRONGBOX_ROOT or /run/strongbox>/clients/<name>-<hash of the path>``.
  Docker 20.10 passes ``<exec root>/runtime-runc/moby`` to every runtime it
  registers, runc's containers live there too, and ``runc list`` reads every
  directory in it as a runc container: strongbox's ``containers/`` and
  ``vms/`` would make it complain. The same ``--root`` always maps to the
  same directory, so every later command of that client finds its state.

A root that exists but is not a directory (or lies under a file) is refused
here, once for every command, as one line naming it: otherwise each verb
would meet it as a different OSError in a different place.

Every verb comes here first: the configuration (TOML parsing) is only a type
here, and ``hashlib`` is imported for a client's root only.
"""

from __future__ import annotations

import os
from pathlib import Path

from strongbox.errors import StateDirError

TYPE_CHECKING = False  # checkers take this as True; `state` need not load the config module
if TYPE_CHECKING:
    from strongbox.config import Config

DEFAULT_STATE_DIR = Path("/var/lib/strongbox")
DEFAULT_ROOT = Path("/run/strongbox")
#: Under strongbox's own root: the roots of clients whose ``--root`` is runc's.
CLIENTS = "clients"


def state_dir(cli_value: str | None, config: Config) -> Path:
    value = cli_value or os.environ.get("STRONGBOX_STATE_DIR") or config.runtime.state_dir
    return Path(value).absolute() if value else DEFAULT_STATE_DIR


#: runc's directories, where its clients keep runc's state: its default root,
#: and (by the parent's name) the per-namespace roots of containerd's runc shim
#: (``/run/containerd/runc/<ns>``) and of Docker 20.10 (``<exec root>/runtime-runc/<ns>``).
RUNC_DEFAULT_ROOT = Path("/run/runc")
RUNC_DIRS = ("runc", "runtime-runc")


def own_root() -> Path:
    """strongbox's own root: ``$STRONGBOX_ROOT`` or ``/run/strongbox``."""
    value = os.environ.get("STRONGBOX_ROOT")
    return Path(value).absolute() if value else DEFAULT_ROOT


def is_runc_root(root: Path) -> bool:
    """Whether ``root`` is runc's own directory, which strongbox must leave to runc."""
    return root == RUNC_DEFAULT_ROOT or root.parent.name in RUNC_DIRS


def client_root(root: Path) -> Path:
    """The root of strongbox's own that stands for a client's ``--root`` in runc's directory."""
    import hashlib

    path = os.path.normpath(root)
    digest = hashlib.sha256(path.encode()).hexdigest()[:12]
    return own_root() / CLIENTS / f"{root.name}-{digest}"


def roots_under(root: Path) -> list[Path]:
    """``root`` and every client root under it (where ``gc`` and ``debug`` look)."""
    try:
        clients = sorted(p for p in (root / CLIENTS).iterdir() if p.is_dir())
    except OSError:
        clients = []
    return [root, *clients]


def root_dir(cli_value: str | None) -> Path:
    root = Path(cli_value).absolute() if cli_value else own_root()
    if cli_value and is_runc_root(root):
        root = client_root(root)
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
