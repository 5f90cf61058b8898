"""A target is one engine's configuration file, with strongbox registered in it or not.

Every engine (``containerd``, ``podman``, ``docker``) fills in the same five
hooks; the rules that make install and uninstall safe live once, here:

- a file that does not parse is refused, before and after the edit;
- ``strip`` removes exactly the text strongbox added, and every new text is
  checked to strip back to what it was made from, so uninstall is exact;
- a ``strongbox`` entry strongbox did not add is never overwritten or
  duplicated (:class:`~strongbox.install.UnmanagedEntryError`);
- installing twice changes nothing the second time; installing with another
  runtime path replaces strongbox's own entry.

Nothing here writes: the result is a :class:`~strongbox.install.Change`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from strongbox.install import (
    RUNTIME_NAME,
    Change,
    ConfigFileError,
    UnmanagedEntryError,
)

ABSENT: Any = object()
"""What :meth:`ConfigTarget.entry` returns when the file has no strongbox entry."""


def lookup(doc: Any, *keys: str) -> Any:
    """``doc[k1][k2]...``, or :data:`ABSENT` where a level is missing or not a table."""
    for key in keys:
        if not isinstance(doc, dict) or key not in doc:
            return ABSENT
        doc = doc[key]
    return doc


class ConfigTarget(ABC):
    """One engine's configuration file and how strongbox is registered in it."""

    tool: ClassVar[str]
    """The engine's name, first word of every message (``containerd``)."""
    syntax: ClassVar[str]
    """``TOML`` or ``JSON``, for error messages."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # -- the hooks each engine provides --------------------------------------

    @abstractmethod
    def parse(self, text: str) -> dict[str, Any]:
        """The parsed document; raises ``ValueError`` if ``text`` is not valid."""

    @abstractmethod
    def entry(self, doc: dict[str, Any]) -> Any:
        """The strongbox entry in ``doc`` wherever the engine reads it, or :data:`ABSENT`."""

    @abstractmethod
    def expected(self) -> Any:
        """What :meth:`entry` reads once strongbox is installed."""

    @abstractmethod
    def strip(self, text: str) -> str | None:
        """``text`` without strongbox's additions; ``None`` if strongbox created the file."""

    @abstractmethod
    def add(self, base: str | None, doc: dict[str, Any]) -> str:
        """``base`` (``None``: no file) with the strongbox entry added; ``doc`` is it parsed."""

    def registered(self, data: bytes | None) -> Any:
        """The strongbox entry in the file's bytes ``data`` (:data:`ABSENT` if none, or no
        file): what ``strongbox check`` reports; compare with :meth:`expected`."""
        if data is None:
            return ABSENT
        return self.entry(self._parse(self._decode(data), ""))

    # -- install and uninstall -------------------------------------------------

    def install(self, before: bytes | None) -> Change:
        """The change that registers strongbox in this file (none if it already is)."""
        text = self._decode(before)
        doc = self._parse(text, "")
        if text is not None and self.strip(text) != text and self.entry(doc) == self.expected():
            return self._change(before, before, f"runtime {RUNTIME_NAME} already registered in")
        base = self.strip(text) if text is not None else None
        base_doc = self._parse(base, "without strongbox's own lines it ")
        if self.entry(base_doc) is not ABSENT:
            raise UnmanagedEntryError(
                self.path, f"a {RUNTIME_NAME!r} runtime is already configured, but not by "
                f"strongbox install: remove it, or leave {self.tool} out with --only")
        after = self.add(base, base_doc)
        self._check(after, base)
        verb = "updated runtime" if base != text else "registered runtime"
        return self._change(before, after.encode(), f"{verb} {RUNTIME_NAME} in")

    def uninstall(self, before: bytes | None) -> Change:
        """The change that removes exactly what :meth:`install` added (none if nothing)."""
        text = self._decode(before)
        doc = self._parse(text, "")
        base = self.strip(text) if text is not None else None
        if base == text:
            if self.entry(doc) is not ABSENT:
                return self._change(before, before, f"left runtime {RUNTIME_NAME} alone (not "
                                    "added by strongbox install) in")
            return self._change(before, before, f"runtime {RUNTIME_NAME} not registered in")
        self._parse(base, "removing strongbox's lines would leave a file that ")
        return self._change(before, None if base is None else base.encode(),
                            f"removed runtime {RUNTIME_NAME} from")

    # -- helpers -----------------------------------------------------------------

    def _change(self, before: bytes | None, after: bytes | None, what: str) -> Change:
        return Change(self.path, before, after, f"{self.tool}: {what} {self.path}")

    def _decode(self, data: bytes | None) -> str | None:
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigFileError(self.path, f"not UTF-8 text (byte {exc.start})") from exc

    def _parse(self, text: str | None, context: str) -> dict[str, Any]:
        """Parse or refuse; ``context`` says which text it was if not the file itself."""
        if text is None:
            return {}
        try:
            return self.parse(text)
        except ValueError as exc:
            problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigFileError(self.path, f"{context}is not valid {self.syntax}: "
                                  f"{problem}; nothing was changed") from exc

    def _check(self, after: str, base: str | None) -> None:
        """Refuse an edit that breaks the file, misses its mark, or cannot be undone."""
        try:
            doc = self.parse(after)
        except ValueError as exc:
            raise ConfigFileError(self.path, f"adding strongbox would make it invalid "
                                  f"{self.syntax} ({exc}); nothing was changed") from exc
        if self.entry(doc) != self.expected():
            raise ConfigFileError(self.path, f"cannot add strongbox where {self.tool} would "
                                  "read it (is the table defined in an unusual form?); "
                                  "nothing was changed")
        if self.strip(after) != base:
            raise ConfigFileError(self.path, "cannot add strongbox in a way uninstall could "
                                  "undo exactly; nothing was changed")
