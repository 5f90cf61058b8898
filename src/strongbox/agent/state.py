"""Process-wide agent facts that handlers report (set once by ``init``)."""

from __future__ import annotations

#: Guest boot-clock seconds at which each start-up milestone happened.
timeline: dict[str, float] = {}
