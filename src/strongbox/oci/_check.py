"""Checks are the typed field readers every config.json rule is written with.

A rule module walks the document with :class:`Node` (one JSON object and its path)
and asks for fields by type: ``process.boolean("terminal", default=False)``. Each
reader checks the value, fills in the default when the field is absent, and raises
:class:`SpecError` with the field's path otherwise, so rules read as a list of what
the spec allows and no rule ever meets a KeyError or TypeError.

Conventions shared by every reader (see spec.py for why):

* absent and JSON null are the same; a default replaces both, and without a default a
  null is removed so consumers see absence;
* integers are ``int`` exactly: ``bool`` is a subclass of ``int`` in Python but not
  a number in JSON, and floats are not integers even when whole;
* ranges are the Go field types of the spec (uint32, int64, ...).
"""

from __future__ import annotations

from .errors import SpecError

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from typing import Any, NoReturn

    IntKind = tuple[int, int, str]

# Integer kinds: (lowest, highest, how the message names the kind).
UINT16: IntKind = (0, (1 << 16) - 1, "a uint16")
UINT32: IntKind = (0, (1 << 32) - 1, "a uint32")
UINT64: IntKind = (0, (1 << 64) - 1, "a uint64")
INT64: IntKind = (-(1 << 63), (1 << 63) - 1, "an int64")

ABSENT: Any = object()
"""What ``show()`` renders as "nothing": the field is missing (or null)."""

_SHOW_LIMIT = 60


def show(value: object) -> str:
    """Render a JSON value for an error message: short, one line, JSON-like.

    Strings use Python quoting (escapes keep it on one line); long values are cut
    with "..." so a huge array never floods the terminal.
    """
    if value is ABSENT:
        return "nothing"
    text = _render(value, _SHOW_LIMIT)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def _render(value: object, budget: int) -> str:
    # `budget` bounds the work (and the recursion) on huge or deeply nested values.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and value.bit_length() > 128:
        return f"a {value.bit_length()}-bit integer"  # repr() would be long, or refused
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value[: budget + 1])
    if isinstance(value, list):
        items: list[object] = value
        opening, closing = "[", "]"
    elif isinstance(value, dict):
        items = [(key, item) for key, item in value.items()]
        opening, closing = "{", "}"
    else:
        return f"<{type(value).__name__}>"
    parts: list[str] = []
    used = 2
    for item in items:
        if used > budget:
            break
        if isinstance(item, tuple):
            text = f"{_render(item[0], budget - used)}: {_render(item[1], budget - used)}"
        else:
            text = _render(item, budget - used)
        parts.append(text)
        used += len(text) + 2
    return opening + ", ".join(parts) + closing


def fail(path: str, expected: str, value: object = ABSENT) -> NoReturn:
    """Raise the SpecError for ``path``: "expected <expected>, got <value>"."""
    raise SpecError(path, expected, show(value))


def json_copy(value: object) -> object:
    """Deep-copy the dicts and lists of a decoded JSON document (scalars are immutable)."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


def expect_object(value: object, path: str) -> Node:
    if not isinstance(value, dict):
        fail(path, "an object", value)
    return Node(value, path)


def expect_string(value: object, path: str, expected: str = "a string") -> str:
    if not isinstance(value, str):
        fail(path, expected, value)
    return value


def expect_int(value: object, path: str, kind: IntKind) -> int:
    low, high, expected = kind
    if type(value) is not int or not low <= value <= high:
        fail(path, expected, value)
    return value


def expect_abspath(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        fail(path, "an absolute path", value)
    return value


def expect_choice(
    value: object, path: str, choices: tuple[str, ...], expected: str | None = None
) -> str:
    if not isinstance(value, str) or value not in choices:
        fail(path, expected or "one of " + ", ".join(choices), value)
    return value


class Node:
    """One JSON object of the spec and its path, with typed readers for its fields.

    Readers return the checked value, or None when the field is absent and has no
    default; with ``required=True`` absence is an error ("got nothing").
    """

    __slots__ = ("path", "value")

    def __init__(self, value: dict[str, Any], path: str) -> None:
        self.value = value
        self.path = path

    def at(self, key: str) -> str:
        """The JSON path of one of this object's fields."""
        return f"{self.path}.{key}" if self.path else key

    def _take(self, key: str, expected: str, required: bool, default: object) -> Any:
        value = self.value.get(key)
        if value is not None:
            return value
        if required:
            fail(self.at(key), expected)
        if default is None:
            self.value.pop(key, None)
            return None
        self.value[key] = default
        return default

    def object(self, key: str, *, required: bool = False) -> Node | None:
        value = self._take(key, "an object", required, None)
        return None if value is None else expect_object(value, self.at(key))

    def object_or(self, key: str, default: dict[str, Any]) -> Node:
        """An optional object field, set to ``default`` when absent."""
        return expect_object(self._take(key, "an object", False, default), self.at(key))

    def array(
        self,
        key: str,
        *,
        required: bool = False,
        default: list[Any] | None = None,
        expected: str = "an array",
    ) -> list[Any] | None:
        value = self._take(key, expected, required, default)
        if value is not None and not isinstance(value, list):
            fail(self.at(key), expected, value)
        return value

    def objects(
        self, key: str, *, required: bool = False, default: list[Any] | None = None
    ) -> list[Node]:
        """An array of objects, each wrapped as a Node with its own path ("mounts[2]")."""
        items = self.array(key, required=required, default=default, expected="an array of objects")
        path = self.at(key)
        return [expect_object(item, f"{path}[{index}]") for index, item in enumerate(items or ())]

    def strings(
        self,
        key: str,
        *,
        required: bool = False,
        default: list[Any] | None = None,
        expected: str = "an array of strings",
    ) -> list[str] | None:
        items = self.array(key, required=required, default=default, expected=expected)
        path = self.at(key)
        for index, item in enumerate(items or ()):
            expect_string(item, f"{path}[{index}]")
        return items

    def string(
        self,
        key: str,
        *,
        required: bool = False,
        default: str | None = None,
        nonempty: bool = False,
    ) -> str | None:
        expected = "a non-empty string" if nonempty else "a string"
        value = self._take(key, expected, required, default)
        if value is None:
            return None
        if nonempty and value == "":
            fail(self.at(key), expected, value)
        return expect_string(value, self.at(key), expected)

    def abspath(
        self, key: str, *, required: bool = False, default: str | None = None
    ) -> str | None:
        value = self._take(key, "an absolute path", required, default)
        return None if value is None else expect_abspath(value, self.at(key))

    def boolean(
        self, key: str, *, required: bool = False, default: bool | None = None
    ) -> bool | None:
        value = self._take(key, "a boolean", required, default)
        if value is not None and not isinstance(value, bool):
            fail(self.at(key), "a boolean", value)
        return value

    def integer(self, key: str, kind: IntKind, *, required: bool = False) -> int | None:
        value = self._take(key, kind[2], required, None)
        return None if value is None else expect_int(value, self.at(key), kind)

    def choice(
        self,
        key: str,
        choices: tuple[str, ...],
        *,
        required: bool = False,
        expected: str | None = None,
    ) -> str | None:
        expected = expected or "one of " + ", ".join(choices)
        value = self._take(key, expected, required, None)
        return None if value is None else expect_choice(value, self.at(key), choices, expected)

    def string_map(self, key: str, *, default: dict[str, Any] | None = None) -> None:
        """An object whose values are all strings (annotations, sysctl, unified)."""
        value = self._take(key, "an object of strings", False, default)
        if value is None:
            return
        path = self.at(key)
        if not isinstance(value, dict):
            fail(path, "an object of strings", value)
        for name, item in value.items():
            expect_string(item, f"{path}[{name!r}]")
