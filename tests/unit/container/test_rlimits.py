"""RLIMIT_* names and values."""

from __future__ import annotations

import pytest

from strongbox.container.errors import ContainerError
from strongbox.container.rlimits import NUMBERS, RLIM_INFINITY, parse


def test_names_map_to_linux_numbers() -> None:
    assert NUMBERS["RLIMIT_CPU"] == 0
    assert NUMBERS["RLIMIT_NPROC"] == 6
    assert NUMBERS["RLIMIT_NOFILE"] == 7
    assert NUMBERS["RLIMIT_AS"] == 9
    assert NUMBERS["RLIMIT_RTTIME"] == 15
    assert len(NUMBERS) == 16


def test_parse() -> None:
    (nofile, core) = parse([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096},
                            {"type": "RLIMIT_CORE", "soft": -1, "hard": 2**64 - 1}])
    assert (nofile.resource, nofile.soft, nofile.hard) == (7, 1024, 4096)
    assert (core.name, core.soft, core.hard) == ("RLIMIT_CORE", RLIM_INFINITY, RLIM_INFINITY)


@pytest.mark.parametrize(("entries", "message"), [
    ([{"type": "RLIMIT_SPOONS", "soft": 1, "hard": 1}], "unknown rlimit type 'RLIMIT_SPOONS'"),
    ([{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 1}], "RLIMIT_NOFILE: soft limit 9 exceeds"),
    ([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}] * 2, "RLIMIT_NOFILE is set twice"),
    ([{"type": "RLIMIT_AS", "soft": 1, "hard": 2**64}], "out of range"),
])
def test_errors_name_the_limit(entries: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ContainerError, match=message) as info:
        parse(entries)
    assert info.value.stage == "rlimit"
