"""Docker registration: ``"runtimes": {"strongbox": {"path": "<runtime>"}}`` in daemon.json.

dockerd drives a registered runtime through containerd's runc shim with
runc's command line, which strongbox speaks, so the entry only names the
executable. ``docker run --runtime strongbox`` then picks it.

JSON has no comments, so strongbox's text is recognized by its exact form
and position (see :mod:`strongbox.install.jsonedit`). There are four forms,
one per starting point, and no two can be mistaken for each other:

=============================  ===============================================
the file before                what install writes
=============================  ===============================================
missing                        the whole file, indented: strongbox's object
                               spread over 7 lines (uninstall deletes it)
empty or only whitespace       ``{"runtimes": {"strongbox": {"path": P}}}``
                               on one line, before the old whitespace
an object without "runtimes"   ``"runtimes": {"strongbox": {"path": P}}`` as
                               its first member, no space after that ``{``
an object with "runtimes"      ``"strongbox": {"path": P}`` as the first
                               member of "runtimes", after a newline or space
=============================  ===============================================

dockerd reads an empty (or blank) daemon.json as an empty configuration,
and accepts a UTF-8 byte order mark; so does strongbox, and both survive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from strongbox.install import RUNTIME_NAME, ConfigFileError, jsonedit, textedit
from strongbox.install.target import ConfigTarget, lookup

DEFAULT_PATH = Path("/etc/docker/daemon.json")
BLANK = jsonedit.WHITESPACE + jsonedit.BOM


def _entry_text(runtime_path: str) -> str:
    return f'"{RUNTIME_NAME}": {{"path": {json.dumps(runtime_path)}}}'


def _runtimes_text(runtime_path: str) -> str:
    return f'"runtimes": {{{_entry_text(runtime_path)}}}'


def _whole_file(runtime_path: str) -> str:
    return json.dumps({"runtimes": {RUNTIME_NAME: {"path": runtime_path}}}, indent=2) + "\n"


class DockerConfig(ConfigTarget):
    """``daemon.json``: strongbox's runtime inserted as text where dockerd reads it."""

    tool = "docker"
    syntax = "JSON"

    def __init__(self, path: Path, runtime_path: str) -> None:
        super().__init__(path)
        self.runtime_path = runtime_path

    def parse(self, text: str) -> dict[str, Any]:
        if not text.strip(BLANK):
            return {}
        doc = json.loads(text.removeprefix(jsonedit.BOM))
        if not isinstance(doc, dict):
            raise ValueError(f"the top level is a {type(doc).__name__}, not an object")
        return doc

    def entry(self, doc: dict[str, Any]) -> Any:
        return lookup(doc, "runtimes", RUNTIME_NAME)

    def expected(self) -> Any:
        return {"path": self.runtime_path}

    def strip(self, text: str) -> str | None:
        path = self._managed_path(text)
        if path is None:
            return text
        if text == _whole_file(path):
            return None
        bom = jsonedit.BOM if text.startswith(jsonedit.BOM) else ""
        one_line = bom + "{" + _runtimes_text(path) + "}"
        if text.startswith(one_line) and not text[len(one_line):].strip(BLANK):
            return bom + text[len(one_line):]
        top = jsonedit.scan(text)
        assert top.members
        span = jsonedit.first_member_span(text, top)
        first = top.members[0]
        if (span and first.key == "runtimes" and first is top.member("runtimes")
                and text[first.start:first.end] == _runtimes_text(path)):
            return text[:span[0]] + text[span[1]:]
        runtimes = top.member("runtimes")
        assert runtimes is not None and runtimes.value.members
        span = jsonedit.first_member_span(text, runtimes.value)
        first = runtimes.value.members[0]
        if (span and first is runtimes.value.member(RUNTIME_NAME)
                and text[first.start:first.end] == _entry_text(path)):
            return text[:span[0]] + text[span[1]:]
        return text

    def _managed_path(self, text: str) -> str | None:
        """The runtime path in a strongbox entry of the form install writes, else None."""
        try:
            entry = self.entry(self.parse(text))
        except ValueError:
            return None
        if isinstance(entry, dict) and list(entry) == ["path"] and isinstance(entry["path"], str):
            return entry["path"]
        return None

    def add(self, base: str | None, doc: dict[str, Any]) -> str:
        if base is None:
            return _whole_file(self.runtime_path)
        if not base.strip(BLANK):
            bom = jsonedit.BOM if base.startswith(jsonedit.BOM) else ""
            return bom + "{" + _runtimes_text(self.runtime_path) + "}" + base[len(bom):]
        top = jsonedit.scan(base)
        assert top.members is not None
        newline = textedit.newline_of(base)
        unit = jsonedit.indent_unit(base, top)
        runtimes = top.member("runtimes")
        if runtimes is None:
            return jsonedit.insert_first(base, top, _runtimes_text(self.runtime_path),
                                         newline, unit)
        if runtimes.value.members is None:
            raise ConfigFileError(self.path, '"runtimes" is not an object; nothing was changed')
        return jsonedit.insert_first(base, runtimes.value, _entry_text(self.runtime_path),
                                     newline, unit)
