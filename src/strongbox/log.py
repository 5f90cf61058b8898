"""Host-side logging: ``strongbox: warning: ...`` lines on stderr.

Library code logs through ``logging.getLogger("strongbox...")``; the command
line installs this one handler so that every warning is a single line in the
same shape as errors.
"""

from __future__ import annotations

import logging
import sys

_installed = False


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"strongbox: {record.levelname.lower()}: {record.getMessage()}"


def setup(debug: bool = False) -> None:
    """Route strongbox's log records to stderr, once per process."""
    global _installed
    logger = logging.getLogger("strongbox")
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    if not _installed:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LineFormatter())
        logger.addHandler(handler)
        logger.propagate = False
        _installed = True
