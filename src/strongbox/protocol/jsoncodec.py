"""Jsoncodec is the protocol's JSON, built on CPython's C accelerator directly.

Why not ``import json``: its Python wrapper compiles regular expressions at
import, which drags in ``re``, ``enum`` and ``functools``; in the guest under
emulation that costs about 120 ms of every boot, more than all of the
agent's own code. The C scanner and encoder in ``_json`` are the very same
functions ``json`` uses for the work, so the behaviour is the standard
library's: strict strings, no NaN or Infinity either way. Where ``_json`` is
unavailable, the ``json`` package is used instead.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - every CPython build ships _json
    _json = None  # type: ignore[assignment]

_WHITESPACE = " \t\n\r"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _not_serializable(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class _ScannerContext:
    """The attributes ``_json.make_scanner`` reads from a ``JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)


if _json is not None:
    _scan = _json.make_scanner(_ScannerContext())  # type: ignore[arg-type]
    _encode = _json.make_encoder(
        {},  # markers: detect reference cycles
        _not_serializable,
        _json.encode_basestring,  # ensure_ascii=False: UTF-8 on the wire
        None,  # indent
        ":",
        ",",
        False,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )

    def dumps(obj: Any) -> str:
        """Compact JSON text; ValueError for NaN/Infinity, TypeError for non-JSON types."""
        return "".join(_encode(obj, 0))

    def loads(text: str) -> Any:
        """Parse one JSON document; ValueError if it is not exactly that."""
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            obj, end = _scan(text, start)
        except StopIteration as exc:
            raise ValueError(f"Expecting value: char {exc.value}") from None
        if text[end:].strip(_WHITESPACE):
            raise ValueError(f"Extra data: char {end}")
        return obj

else:  # pragma: no cover
    import json as _std

    def dumps(obj: Any) -> str:
        return _std.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def loads(text: str) -> Any:
        return _std.loads(text, parse_constant=_reject_constant)
