"""Jsonfile is the one reader of untrusted JSON files: config.json, `--process`, `update -r`.

Every JSON document a user hands the runtime goes through :func:`read_json_file`
(or :func:`decode_json` for bytes from stdin), so each way a file can be wrong is
refused once, here, as a one-line :class:`~strongbox.errors.ConfigError` naming the
file (and the JSON path when a value is at fault), before anything is created or
booted:

* the file is missing, a directory or unreadable;
* it is larger than the cap (read at most cap + 1 bytes: a huge file or
  ``/dev/zero`` never fills memory);
* it is not UTF-8, or not JSON; ``NaN``/``Infinity`` (Python's extensions) and
  numbers out of a float's range (``1e999``, which Python reads as infinity) are
  not JSON, and Go's decoder (runc's) refuses them too;
* it nests deeper than :data:`MAX_DEPTH`: the decoder and every recursive consumer
  downstream (validation, the encoders towards the monitor and the guest) would
  otherwise die of a ``RecursionError``;
* a string holds a lone surrogate (``"\\ud800"`` is a legal JSON escape, but not
  Unicode text): it cannot be encoded as UTF-8, so it would fail later, far from
  the file, when the spec is sent to the guest.

:func:`first_problem` is the structural half (depth, surrogates, finite numbers,
JSON types only) on an already decoded value; ``validate()`` runs it too, so
documents that come from elsewhere (containerd's Exec and Update) meet the same
rules.

Standard library only, and ``json`` is imported on first use: this package is
imported by the guest, which receives documents already decoded.
"""

from __future__ import annotations

from strongbox.errors import ConfigError

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Link = tuple[Any, object] | None  # (parent link, key or index): a path built on failure

MAX_JSON_BYTES = 16 << 20
"""Largest file read: even big seccomp profiles are well under 1 MiB."""

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; config.json needs about 7."""

_PATH_LIMIT = 100
_INF = float("inf")


class _Refused(Exception):
    """Raised from inside the decoder's callbacks; turned into the file's ConfigError."""


def read_json_file(path: str, label: str = "", *, max_bytes: int = MAX_JSON_BYTES,
                   missing: str = "", stdin: bool = False) -> object:
    """Read and decode one untrusted JSON file; every failure is one ConfigError line.

    ``label`` names the argument the path came from ("--process"), so the message
    says which input is wrong; ``missing`` is added to a no-such-file message (a
    hint such as "a bundle must hold config.json"). With ``stdin`` the path "-"
    means standard input, as ``update -r -`` does in runc.
    """
    where = f"{label} {path}" if label else path
    try:
        if stdin and path == "-":
            import sys

            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with open(path, "rb") as file:
                data = file.read(max_bytes + 1)
    except FileNotFoundError:
        hint = f" ({missing})" if missing else ""
        raise _error(where, f"no such file{hint}") from None
    except IsADirectoryError:
        raise _error(where, "cannot read: is a directory, not a JSON file") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise _error(where, f"cannot read: {reason}") from exc
    return decode_json(data, where, max_bytes=max_bytes)


def read_section_file(path: str, flag: str, section: str, what: str,
                      check: Callable[[object], dict[str, Any]], *,
                      stdin: bool = False) -> dict[str, Any]:
    """A file holding one section of a spec (``exec --process``: "process", ``update -r``:
    "linux.resources"), read with :func:`read_json_file` and checked by ``check``.

    Every problem names the file by its flag (``--process FILE: args: expected
    ...``), not config.json: ``what`` says what the object is ("an OCI process").
    """
    from .errors import SpecError

    where = f"{flag} {path}"
    value = read_json_file(path, flag, stdin=stdin)
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a JSON object ({what}), "
                          f"got {type(value).__name__}")
    try:
        return check(value)
    except SpecError as exc:
        raise section_error(where, section, exc) from None


def section_error(where: str, section: str, exc: ConfigError) -> ConfigError:
    """A spec field's error as ``where``'s: "--process FILE: args: ...", not config.json's."""
    path = getattr(exc, "path", "")
    field = path.removeprefix(section).removeprefix(".")
    expected, got = getattr(exc, "expected", ""), getattr(exc, "got", "")
    return ConfigError(f"{where}: {field + ': ' if field else ''}expected {expected}, got {got}")


def decode_json(data: bytes, where: str, *, max_bytes: int = MAX_JSON_BYTES) -> object:
    """Decode untrusted JSON bytes; ``where`` starts every error message (a file name)."""
    import json

    if len(data) > max_bytes:
        raise _error(where, f"larger than {_size(max_bytes)}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _error(where, f"not UTF-8 text (bad byte at offset {exc.start})") from None

    def refuse_constant(name: str) -> object:
        raise _Refused(f"{name} is not a JSON value")

    try:
        value = json.loads(text, parse_constant=refuse_constant)
    except _Refused as exc:
        raise _error(where, f"invalid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise _error(where, f"invalid JSON at line {exc.lineno}, column {exc.colno}: "
                            f"{exc.msg}") from None
    except ValueError as exc:  # a number of more than 4300 digits (CPython's int limit)
        raise _error(where, f"invalid JSON: {str(exc).split(':')[0]}") from None
    except RecursionError:
        raise _error(where, f"invalid JSON: nested more than {MAX_DEPTH} levels deep") \
            from None
    problem = first_problem(value)
    if problem is not None:
        path, expected, got = problem
        raise _error(where, f"{path + ': ' if path else ''}expected {expected}, got {got}")
    return value


def first_problem(value: object, max_depth: int = MAX_DEPTH) -> tuple[str, str, str] | None:
    """The first value that cannot be sent on as JSON text: (JSON path, expected, got).

    None when the document is fine. Iterative, so any depth is safe to check:
    containers deeper than ``max_depth``, strings (keys included) with lone
    surrogates, non-finite floats and anything that is not a JSON type.
    """
    stack: list[tuple[object, int, Link]] = [(value, 0, None)]
    while stack:
        node, depth, link = stack.pop()
        if isinstance(node, dict):
            for key in node:
                if not isinstance(key, str) or not _is_text(key):
                    return _path(link), "keys that are text", _describe(key)
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            problem = _scalar_problem(node)
            return None if problem is None else (_path(link), *problem)
        if depth >= max_depth:  # the document's fault, not one field's: no (long) path
            return "", f"a document nested at most {max_depth} levels deep", "deeper"
        for key, item in items:
            if isinstance(item, dict | list):
                stack.append((item, depth + 1, (link, key)))
            elif (problem := _scalar_problem(item)) is not None:
                return (_path((link, key)), *problem)
    return None


def _scalar_problem(value: object) -> tuple[str, str] | None:
    """(expected, got) when a non-container value is not plain JSON, else None."""
    if isinstance(value, str):
        return None if _is_text(value) else ("Unicode text", _describe(value))
    if isinstance(value, float):
        if -_INF < value < _INF:
            return None
        from ._check import show

        return "a finite number", show(value)
    if value is None or isinstance(value, bool | int):
        return None
    return "a JSON value", f"<{type(value).__name__}>"


def _is_text(text: str) -> bool:
    """True unless ``text`` holds a lone surrogate (what UTF-8 cannot encode)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _describe(text: object) -> str:
    """Where the lone surrogate of a string is (its value may be long), or the non-string."""
    if not isinstance(text, str):
        return f"a key of type {type(text).__name__}"
    index = next((i for i, c in enumerate(text) if "\ud800" <= c <= "\udfff"), 0)
    return f"a lone surrogate ({ascii(text[index])[1:-1]}) at character {index}"


def _path(link: Link) -> str:
    """The JSON path of a link, as SpecError paths read ("process.env[1]"), capped."""
    parts: list[str] = []
    while link is not None:
        link, key = link
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif isinstance(key, str) and key.isidentifier() and key.isascii():
            parts.append(f".{key}")
        else:
            parts.append(f"[{_short(key)}]")
    text = "".join(reversed(parts)).removeprefix(".")
    return text if len(text) <= _PATH_LIMIT else text[: _PATH_LIMIT - 3] + "..."


def _short(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


def _size(count: int) -> str:
    return f"{count >> 20} MiB" if count >= 1 << 20 and not count % (1 << 20) else \
        f"{count} bytes"


def _error(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")
