"""Container ids: the same rule as runc, so every client's ids are accepted."""

from __future__ import annotations

import re

from strongbox.errors import ConfigError

_ID = re.compile(r"^[\w+\-.]+$")
MAX_ID_LENGTH = 1024


def validate_id(container_id: str) -> str:
    """Return the id, or raise naming the rule it breaks."""
    if not container_id:
        raise ConfigError("container id: must not be empty")
    if len(container_id) > MAX_ID_LENGTH or not _ID.match(container_id):
        raise ConfigError(f"container id {container_id!r}: expected letters, digits, "
                          "'_', '+', '-' and '.' only")
    if container_id in (".", ".."):
        raise ConfigError(f"container id {container_id!r}: not a valid id")
    return container_id
