"""The timeline's records: one per phase, with its duration, as text and as JSON fields."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from strongbox import log as sblog
from strongbox import timeline


@pytest.fixture
def records() -> list[logging.LogRecord]:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("strongbox")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield seen
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_laps_are_consecutive_phases(records: list[logging.LogRecord]) -> None:
    steps = timeline.Timeline("c1", start=10.0)
    steps.lap("prepare", at=10.25)
    steps.lap("agent ready", "hello", at=11.0)
    assert [(r.subject, r.phase, r.duration_s) for r in records] == [  # type: ignore[attr-defined]
        ("c1", "prepare", 0.25), ("c1", "agent ready", 0.75)]
    assert records[1].getMessage() == "c1: phase agent ready 0.750s (hello)"


def test_a_span_is_recorded_even_when_it_raises(records: list[logging.LogRecord]) -> None:
    with pytest.raises(RuntimeError), timeline.span("sb", "teardown"):
        raise RuntimeError("boom")
    assert records[0].phase == "teardown"  # type: ignore[attr-defined]


def test_nothing_is_formatted_below_debug(records: list[logging.LogRecord]) -> None:
    logging.getLogger("strongbox").setLevel(logging.INFO)
    timeline.phase("c1", "prepare", 0.1)
    assert records == []


def test_json_log_lines_carry_the_phase_as_fields(tmp_path: Path) -> None:
    formatter = sblog._JSONFormatter()
    record = logging.getLogger("strongbox.timeline").makeRecord(
        "strongbox.timeline", logging.DEBUG, "", 0, "%s: phase %s", ("c1", "network"), None,
        extra={"phase": "network", "duration_s": 0.2, "subject": "c1"})
    line = json.loads(formatter.format(record))
    assert line["phase"] == "network" and line["duration_s"] == 0.2 and line["subject"] == "c1"
    assert line["level"] == "debug" and line["msg"] == "c1: phase network"


def test_process_age_is_counted_from_its_fork() -> None:
    assert 0 < timeline.since_process_start() < 3600
