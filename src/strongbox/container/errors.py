"""ContainerError is the one error a container could not be created or started with.

``stage`` names the step that failed (``"mount"``, ``"exec"``, ``"seccomp"``,
...) so callers can tell a bad spec from a broken guest without parsing
text; ``str(err)`` is one line naming what failed and why, e.g.
``mount /proc: Operation not permitted``. The same line travels over the
launcher's pipes, which is why a message must never contain a newline.
"""

from __future__ import annotations

import os


class ContainerError(Exception):
    """A container step failed; ``stage`` says which, ``errno`` why (when a syscall did)."""

    def __init__(self, stage: str, message: str, errno: int | None = None) -> None:
        message = " ".join(message.split("\n"))
        super().__init__(message)
        self.stage = stage
        self.message = message
        self.errno = errno

    def __str__(self) -> str:
        return self.message

    @classmethod
    def from_os(cls, stage: str, what: str, exc: OSError) -> ContainerError:
        """``what: <strerror>``: the kernel's reason, without Python's ``[Errno n]`` noise."""
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return cls(stage, f"{what}: {reason}", exc.errno)
