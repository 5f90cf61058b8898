"""Containerd registration: a CRI runtime named strongbox, served by strongbox's shim.

containerd turns ``runtime_type = "io.containerd.strongbox.v2"`` into the
binary name ``containerd-shim-strongbox-v2`` and looks for it on its own
``PATH`` and next to the containerd binary, nowhere else. So the config
only names the runtime type; where the shim lives is checked separately
(:func:`shim_note`), and strongbox never links binaries into system
directories behind the admin's back.

Where the runtime table goes depends on the config's ``version``:

=========  ============================================================
version    table
=========  ============================================================
1 (none)   ``[plugins.cri.containerd.runtimes.strongbox]``
2          ``[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.strongbox]``
3          ``[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.strongbox]``
           (containerd 2.x)
=========  ============================================================

A missing file counts as an empty version 2 file (what containerd 1.x
assumes without a config) and is created with ``version = 2``, inside
strongbox's block, so uninstall deletes the file again. Nothing else is
added: no options, no default runtime change.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from strongbox.install import RUNTIME_NAME, ConfigFileError, textedit
from strongbox.install.target import ConfigTarget, lookup

DEFAULT_PATH = Path("/etc/containerd/config.toml")
RUNTIME_TYPE = f"io.containerd.{RUNTIME_NAME}.v2"
SHIM_BINARY = f"containerd-shim-{RUNTIME_NAME}-v2"
"""The binary containerd derives from :data:`RUNTIME_TYPE`; the name is not configurable."""

CRI_PLUGIN = {
    1: ("cri",),
    2: ("io.containerd.grpc.v1.cri",),
    3: ("io.containerd.cri.v1.runtime",),
}
"""Per config version, the CRI plugin's key under ``plugins``."""


def _version(doc: dict[str, Any]) -> int:
    version = doc.get("version", 1)
    return version if isinstance(version, int) and version in CRI_PLUGIN else 0


def runtime_keys(version: int) -> tuple[str, ...]:
    """The dotted path of the strongbox runtime table in a config of ``version``."""
    return ("plugins", *CRI_PLUGIN[version], "containerd", "runtimes", RUNTIME_NAME)


def table_header(version: int) -> str:
    """``[plugins...runtimes.strongbox]``, keys quoted where TOML needs it."""
    keys = [key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'
            for key in runtime_keys(version)]
    return f"[{'.'.join(keys)}]"


class ContainerdConfig(ConfigTarget):
    """containerd's ``config.toml``: strongbox's runtime table in a marked block."""

    tool = "containerd"
    syntax = "TOML"

    def parse(self, text: str) -> dict[str, Any]:
        doc = tomllib.loads(text)
        if "version" in doc and not _version(doc):
            raise ConfigFileError(self.path, f"config version {doc['version']!r} is not one "
                                  f"strongbox knows (1, 2 or 3)")
        return doc

    def entry(self, doc: dict[str, Any]) -> Any:
        return lookup(doc, *runtime_keys(_version(doc) or 1))

    def expected(self) -> Any:
        return {"runtime_type": RUNTIME_TYPE}

    def strip(self, text: str) -> str | None:
        base, created = textedit.remove_marks(text)
        return None if created and not base else base

    def add(self, base: str | None, doc: dict[str, Any]) -> str:
        version = 2 if base is None else _version(doc)
        body = [table_header(version), f"  runtime_type = {textedit.toml_string(RUNTIME_TYPE)}"]
        if base is None:
            body = ["version = 2", "", *body]
        return textedit.append_block(base, body)


def shim_note(shim_path: str, search_path: str | None = None,
              containerd: str | None = None) -> str | None:
    """A note when containerd will not find ``shim_path``, saying where it looks.

    ``search_path`` is the ``PATH`` to judge by (default: ours; containerd
    started by systemd usually has the standard one) and ``containerd`` the
    containerd binary, whose directory containerd also searches.
    """
    search_path = os.environ.get("PATH", "") if search_path is None else search_path
    dirs = [d for d in search_path.split(os.pathsep) if d]
    if containerd:
        dirs.append(os.path.dirname(containerd))
    problems = []
    if os.path.basename(shim_path) != SHIM_BINARY:
        problems.append(f"it must be named {SHIM_BINARY}")
    elif not any(_same_file(os.path.join(d, SHIM_BINARY), shim_path) for d in dirs):
        problems.append(f"{os.path.dirname(shim_path) or '.'} is not on PATH")
    if not os.path.exists(shim_path):
        problems.append(f"{shim_path} does not exist")
    if not problems:
        return None
    return (f"containerd: note: containerd runs {SHIM_BINARY} from its PATH or from the "
            f"directory containerd is in; {', and '.join(problems)}: put the shim there "
            f"(e.g. link it into /usr/local/bin) before using the runtime")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
