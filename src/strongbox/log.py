"""Host-side logging: one ``strongbox: level: message`` line per record on stderr,
and, with ``--log FILE``, the same records in FILE as text or as runc-style
JSON lines (``{"level": "error", "msg": "...", "time": "..."}``), which is
where podman and conmon look for a runtime's error message.

Library code logs through ``logging.getLogger("strongbox...")``; only the
command line configures handlers.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys

_LOGGER = logging.getLogger("strongbox")
_stderr_handler: logging.Handler | None = None
_file_handler: logging.Handler | None = None


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"strongbox: {record.levelname.lower()}: {record.getMessage()}"


#: The fields of a :mod:`strongbox.timeline` record, written as JSON fields of their own.
_PHASE_FIELDS = ("subject", "phase", "duration_s")


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry = {"level": record.levelname.lower(), "msg": record.getMessage(),
                 "time": when.isoformat().replace("+00:00", "Z")}
        for key in _PHASE_FIELDS:  # a timeline record (strongbox.timeline)
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        return json.dumps(entry)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        return (f'time="{when.isoformat().replace("+00:00", "Z")}" '
                f'level={record.levelname.lower()} msg="{record.getMessage()}"')


def setup(debug: bool = False, log_file: str | None = None, log_format: str = "text") -> None:
    """Route strongbox's records to stderr and, if given, to ``log_file``."""
    global _stderr_handler, _file_handler
    _LOGGER.setLevel(logging.DEBUG if debug else logging.INFO if log_file else logging.WARNING)
    _LOGGER.propagate = False
    if _stderr_handler is None:
        _stderr_handler = logging.StreamHandler(sys.stderr)
        _stderr_handler.setFormatter(_LineFormatter())
        _stderr_handler.setLevel(logging.DEBUG if debug else logging.WARNING)
        _LOGGER.addHandler(_stderr_handler)
    if log_file and _file_handler is None:
        try:
            _file_handler = logging.FileHandler(log_file)
        except OSError as exc:
            _LOGGER.warning("cannot open --log %s: %s", log_file, exc.strerror)
            return
        _file_handler.setFormatter(_JSONFormatter() if log_format == "json"
                                   else _TextFormatter())
        _LOGGER.addHandler(_file_handler)


def error(message: str) -> None:
    """A command's final error: one line on stderr, and a record in the log file."""
    sys.stderr.write(f"strongbox: error: {message}\n")
    sys.stderr.flush()
    if _file_handler is not None:
        _file_handler.handle(_LOGGER.makeRecord("strongbox", logging.ERROR, "", 0, message,
                                                (), None))


def quiet_stderr() -> None:
    """For the monitor: its stderr is the container's, so it logs to the file only."""
    global _stderr_handler
    if _stderr_handler is not None:
        _LOGGER.removeHandler(_stderr_handler)
        _stderr_handler = None


def debug_traceback(text: str) -> None:
    _LOGGER.debug("%s", text)
