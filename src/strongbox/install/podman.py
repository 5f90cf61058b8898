"""Podman registration: ``strongbox = ["<runtime>"]`` under ``[engine.runtimes]``.

podman (and buildah, CRI-O's ``containers.conf`` readers) take a runtime
as a name and a list of candidate paths; strongbox gives one, the path of
its own executable. ``podman --runtime strongbox`` then picks it.

If the file has an ``[engine.runtimes]`` table, one marked line goes right
under its header, next to the runtimes already there; otherwise a marked
block with a new ``[engine.runtimes]`` table is appended. A runtimes table
written as an inline table or with dotted keys cannot take either edit
without rewriting someone's text, so it is refused with a message saying
what to add by hand.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from strongbox.install import RUNTIME_NAME, ConfigFileError, textedit
from strongbox.install.target import ABSENT, ConfigTarget, lookup

DEFAULT_PATH = Path("/etc/containers/containers.conf")
TABLE = "engine.runtimes"


class PodmanConfig(ConfigTarget):
    """``containers.conf``: strongbox's runtime as a marked line or block."""

    tool = "podman"
    syntax = "TOML"

    def __init__(self, path: Path, runtime_path: str) -> None:
        super().__init__(path)
        self.runtime_path = runtime_path

    def parse(self, text: str) -> dict[str, Any]:
        return tomllib.loads(text)

    def entry(self, doc: dict[str, Any]) -> Any:
        return lookup(doc, *TABLE.split("."), RUNTIME_NAME)

    def expected(self) -> Any:
        return [self.runtime_path]

    def strip(self, text: str) -> str | None:
        base, created = textedit.remove_marks(text)
        return None if created and not base else base

    def add(self, base: str | None, doc: dict[str, Any]) -> str:
        line = f"{RUNTIME_NAME} = [{textedit.toml_string(self.runtime_path)}]"
        header = None if base is None else textedit.find_table(base, TABLE)
        if header is not None:
            assert base is not None
            return textedit.insert_line(base, header, line)
        if lookup(doc, *TABLE.split(".")) is not ABSENT:
            raise ConfigFileError(self.path, f"[{TABLE}] is written as an inline table or "
                                  f"with dotted keys, which strongbox install does not edit: "
                                  f"add {line} to it by hand")
        return textedit.append_block(base, [f"[{TABLE}]", line])
