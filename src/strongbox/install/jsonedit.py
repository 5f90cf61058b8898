"""Jsonedit finds where things are in a JSON text, so members can be added without re-serializing.

:func:`scan` returns the spans of every object and member; it expects text
``json.loads`` has already accepted, so it only needs to know where values
start and end (strings with escapes, nested objects and arrays, literals).
:func:`insert_first` and :func:`remove_first` add and remove an object's
*first* member. JSON has no comments to mark strongbox's text with, so the
position is the mark:

- a member strongbox inserts always becomes the object's first member,
  written directly after the ``{``: in a multi-line object, on a line of
  its own with a comma directly after it if other members follow; in a
  one-line object, between a space and ``", "`` (or a space, if alone);
- removing it takes out everything from the ``{`` to the end of that
  suffix, which is exactly what was inserted: the object's own whitespace
  comes after it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

WHITESPACE = " \t\r\n"
BOM = "\ufeff"
"""A UTF-8 byte order mark: docker accepts one at the start of daemon.json."""
_SCALAR_END = re.compile(r"[\s,\]}]")


@dataclass
class Node:
    """A JSON value's span ``text[start:end]``; objects also list their members."""

    start: int
    end: int
    members: list[Member] | None = None

    def member(self, key: str) -> Member | None:
        """The last member named ``key`` (the one ``json.loads`` keeps), if any."""
        found = [m for m in self.members or [] if m.key == key]
        return found[-1] if found else None


@dataclass
class Member:
    """``"key": value``: ``start`` is the key's opening quote, ``value.end`` its end."""

    key: str
    start: int
    value: Node = field(repr=False)

    @property
    def end(self) -> int:
        return self.value.end


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i


def _string_end(text: str, i: int) -> int:
    """The index after the string starting at ``text[i] == '"'``."""
    i += 1
    while text[i] != '"':
        i += 2 if text[i] == "\\" else 1
    return i + 1


def _value(text: str, i: int) -> Node:
    """The value starting at ``i`` (no leading whitespace)."""
    char = text[i]
    if char == '"':
        return Node(i, _string_end(text, i))
    if char == "[":
        j = _skip_ws(text, i + 1)
        while text[j] != "]":
            j = _skip_ws(text, _value(text, j).end)
            if text[j] == ",":
                j = _skip_ws(text, j + 1)
        return Node(i, j + 1)
    if char == "{":
        members: list[Member] = []
        j = _skip_ws(text, i + 1)
        while text[j] != "}":
            key_end = _string_end(text, j)
            key = json.loads(text[j:key_end])
            colon = _skip_ws(text, key_end)
            value = _value(text, _skip_ws(text, colon + 1))
            members.append(Member(key, j, value))
            j = _skip_ws(text, value.end)
            if text[j] == ",":
                j = _skip_ws(text, j + 1)
        return Node(i, j + 1, members)
    match = _SCALAR_END.search(text, i)
    return Node(i, match.start() if match else len(text))


def scan(text: str) -> Node:
    """The top-level value of ``text``, which must be valid JSON (after a BOM, if any)."""
    return _value(text, _skip_ws(text, 1 if text.startswith(BOM) else 0))


def _line_indent(text: str, i: int) -> str:
    """The leading blanks of the line holding ``text[i]``."""
    line_start = text.rfind("\n", 0, i) + 1
    end = line_start
    while end < len(text) and text[end] in " \t":
        end += 1
    return text[line_start:end]


def insert_first(text: str, obj: Node, member: str, newline: str, unit: str) -> str:
    """``text`` with ``member`` (``"key": value``) made the first member of ``obj``.

    In a multi-line object the new member gets a line of its own, indented
    like the object's other members (in an empty one: the line's
    indentation plus ``unit``) and followed by a bare comma if others
    follow. A one-line object stays on one line: a space before the
    member and ``", "`` (or, alone, ``" "``) after it.
    """
    assert obj.members is not None
    inside = text[obj.start + 1:obj.members[0].start if obj.members else obj.end - 1]
    if "\n" in inside:
        indent = (inside[inside.rindex("\n") + 1:] if obj.members
                  else _line_indent(text, obj.start) + unit)
        prefix, suffix = newline + indent, "," if obj.members else ""
    else:
        prefix, suffix = " ", ", " if obj.members else " "
    return text[:obj.start + 1] + prefix + member + suffix + text[obj.start + 1:]


def first_member_span(text: str, obj: Node) -> tuple[int, int] | None:
    """The span :func:`insert_first` would have inserted for ``obj``'s first member.

    ``None`` if the first member does not look inserted: its prefix and
    suffix must be what :func:`insert_first` writes for the style the
    prefix shows (a newline in it: multi-line).
    """
    if not obj.members:
        return None
    first = obj.members[0]
    prefix = text[obj.start + 1:first.start]
    if not prefix or prefix.strip(WHITESPACE):
        return None
    if "\n" in prefix:
        suffix = "," if len(obj.members) > 1 else ""
    else:
        suffix = ", " if len(obj.members) > 1 else " "
    if text[first.end:first.end + len(suffix)] != suffix:
        return None
    return obj.start + 1, first.end + len(suffix)


def indent_unit(text: str, top: Node) -> str:
    """One level of the file's indentation, judged by the top-level object; default 2 spaces."""
    if top.members:
        before = text[top.start + 1:top.members[0].start]
        if "\n" in before:
            unit = before[before.rindex("\n") + 1:]
            if unit:
                return unit
    return "  "
