"""Errors of the OCI package: a config.json field that the runtime spec does not allow.

Its own module so that the spec reader (:mod:`.spec`) and the rules
(``_check`` and the section modules) both import it without importing each
other. Standard library only.
"""

from __future__ import annotations

from strongbox.errors import ConfigError


class SpecError(ConfigError):
    """A config.json field is missing or has a value the runtime spec does not allow.

    ``path`` is the JSON path of the field ("process.args[0]",
    "linux.namespaces[2].type", "" for the document itself), ``expected`` what the
    spec allows there ("a non-empty array of strings") and ``got`` a short rendering
    of what was found. The message is one line, because the command line prints it
    as the whole diagnosis::

        config.json: process.args: expected a non-empty array of strings, got []
    """

    def __init__(self, path: str, expected: str, got: str) -> None:
        where = f"{path}: " if path else ""
        super().__init__(f"config.json: {where}expected {expected}, got {got}")
        self.path = path
        self.expected = expected
        self.got = got
