"""Textedit adds and removes marked text in TOML files without touching the rest.

Two kinds of mark, both TOML comments, so the engines ignore them:

- a **block** appended at the end of the file::

      # strongbox install: begin
      [engine.runtimes]
      strongbox = ["/usr/local/bin/strongbox"]
      # strongbox install: end

  If the file did not exist, the first line reads
  ``# strongbox install: begin (created this file)``, so that removing the
  block can delete the file again instead of leaving it empty.

- a **line** inserted into an existing table, ending in ``# strongbox install``.

New lines use the file's own line ending (CRLF stays CRLF). A file that
does not end in a newline keeps not ending in one: the newline strongbox
needs goes *before* its text, and is taken back out with it. Removing
the marks from ``add_*(text)`` therefore always gives ``text`` back.

Lines are split on ``\\n`` only: ``str.splitlines`` would also split on
form feeds and Unicode separators, which TOML allows inside strings.
"""

from __future__ import annotations

import json
import re

BEGIN = "# strongbox install: begin"
BEGIN_CREATED = "# strongbox install: begin (created this file)"
END = "# strongbox install: end"
LINE_MARK = "  # strongbox install"


def split_lines(text: str) -> list[str]:
    """Lines with their endings; the last one may have none."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def newline_of(text: str) -> str:
    """The file's line ending, from its first line; ``\\n`` if it has none."""
    end = text.find("\n")
    return "\r\n" if end > 0 and text[end - 1] == "\r" else "\n"


def _content(line: str) -> str:
    return line.rstrip("\n").removesuffix("\r")


def _terminated(lines: list[str], newline: str) -> list[str]:
    """``lines`` whose last line is given a line ending, if it lacks one."""
    if lines and not lines[-1].endswith("\n"):
        lines = [*lines[:-1], lines[-1] + newline]
    return lines


def append_block(text: str | None, body: list[str]) -> str:
    """``text`` with ``body`` (lines without endings) appended between block marks.

    ``text`` None means the file does not exist yet: the block becomes the
    whole file and says it created it.
    """
    base = text or ""
    newline = newline_of(base)
    first = BEGIN_CREATED if text is None else BEGIN
    block = newline.join([first, *body, END])
    if base and not base.endswith("\n"):
        return base + newline + block
    return base + block + newline


def insert_line(text: str, after: int, line: str) -> str:
    """``text`` with ``line`` (no ending, marked) inserted after line number ``after``."""
    lines = split_lines(text)
    newline = newline_of(text)
    marked = _indent_for(lines, after) + line + LINE_MARK
    if lines[after].endswith("\n"):
        lines.insert(after + 1, marked + newline)
    else:  # ``after`` is the last line and has no ending: keep the file unterminated
        lines[after] += newline
        lines.append(marked)
    return "".join(lines)


def _indent_for(lines: list[str], after: int) -> str:
    """Indentation for a key under header ``lines[after]``: the next key's, else the header's."""
    following = _content(lines[after + 1]) if after + 1 < len(lines) else ""
    stripped = following.lstrip(" \t")
    if stripped and not stripped.startswith(("[", "#")):
        return following[:len(following) - len(stripped)]
    header = _content(lines[after])
    return header[:len(header) - len(header.lstrip(" \t"))]


def remove_marks(text: str) -> tuple[str, bool]:
    """``text`` without any marked block or line, and whether strongbox created the file.

    The exact inverse of :func:`append_block` and :func:`insert_line`. An
    unterminated ``begin`` (someone deleted the ``end`` line) is left alone:
    guessing where the block ends could delete someone's configuration.
    """
    lines = split_lines(text)
    kept: list[str] = []
    created = False
    removed_last = False
    i = 0
    while i < len(lines):
        content = _content(lines[i])
        if content in (BEGIN, BEGIN_CREATED):
            end = next((j for j in range(i + 1, len(lines)) if _content(lines[j]) == END), None)
            if end is not None:
                created = created or content == BEGIN_CREATED
                removed_last = end == len(lines) - 1
                i = end + 1
                continue
        elif content.endswith(LINE_MARK):
            removed_last = i == len(lines) - 1
            i += 1
            continue
        kept.append(lines[i])
        i += 1
    if removed_last and not lines[-1].endswith("\n") and kept:
        # The removed text ended the file without a newline: the newline
        # before it was strongbox's, so the file ends where it used to.
        last = kept[-1]
        kept[-1] = last[:-2] if last.endswith("\r\n") else last[:-1]
    return "".join(kept), created


def has_marks(text: str) -> bool:
    """Whether ``text`` holds anything :func:`remove_marks` would remove."""
    return remove_marks(text)[0] != text


def find_table(text: str, dotted: str) -> int | None:
    """The line number of the ``[table]`` header for ``dotted`` (e.g. ``engine.runtimes``).

    Keys may be bare or quoted (``["engine"."runtimes"]``) with blanks around
    the dots. Headers inside multi-line strings are not recognized as such;
    callers check the edited file by parsing it, which catches that case.
    """
    keys = [rf"""(?:{re.escape(k)}|"{re.escape(k)}"|'{re.escape(k)}')"""
            for k in dotted.split(".")]
    pattern = re.compile(r"^[ \t]*\[[ \t]*" + r"[ \t]*\.[ \t]*".join(keys)
                         + r"[ \t]*\][ \t]*(?:#.*)?$")
    for number, line in enumerate(split_lines(text)):
        if pattern.match(_content(line)):
            return number
    return None


def toml_string(value: str) -> str:
    """A TOML basic string for ``value``.

    JSON's escapes are a subset of TOML's; DEL is the one character TOML
    needs escaped and JSON does not. Non-ASCII stays literal (TOML files are
    UTF-8, and JSON's surrogate-pair escapes are not valid TOML).
    """
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
