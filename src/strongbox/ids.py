"""Container ids: runc's rule, checked before any work, so every client's ids mean the same.

runc accepts an id that matches Go's ``^[\\w+-\\.]+$`` and is not "." or "..".
Two details of Go's regexp matter and differ from Python's ``re``: ``\\w`` is
ASCII only (``[0-9A-Za-z_]``), and ``$`` matches only at the very end of the
text (Python's also matches before a trailing newline). So the rule here is
written out in ASCII and matched with ``fullmatch``: "a\\n" and "é" are refused
up front, as runc refuses them, instead of naming a directory and a VM and
failing inside the guest.

One deliberate difference: in Go's class ``+-\\.`` is a range, which also
admits ",". strongbox refuses the comma, because an id names the VM's run
directory and QEMU's option syntax uses "," as its separator (a path on
QEMU's command line holding one would need escaping).

The id becomes a directory name (``<root>/containers/<id>``, ``<root>/vms/<id>``),
so it is at most NAME_MAX (255) bytes: a longer one would fail at mkdir anyway.
"""

from __future__ import annotations

import re

from strongbox.errors import ConfigError

_ID = re.compile(r"[A-Za-z0-9_+\-.]+")
MAX_ID_LENGTH = 255
_SHOWN = 100


def validate_id(container_id: str) -> str:
    """Return the id, or raise a one-line ConfigError naming the rule it breaks."""
    if not container_id:
        raise ConfigError("container id: must not be empty")
    shown = repr(container_id[:_SHOWN]) + ("..." if len(container_id) > _SHOWN else "")
    if len(container_id) > MAX_ID_LENGTH:
        raise ConfigError(f"container id {shown}: longer than {MAX_ID_LENGTH} characters")
    if not _ID.fullmatch(container_id):
        raise ConfigError(f"container id {shown}: expected ASCII letters, digits, '_', '+', "
                          "'-' and '.' only")
    if container_id in (".", ".."):
        raise ConfigError(f"container id {shown}: not a valid id")
    return container_id
