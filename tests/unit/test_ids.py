"""Container ids follow runc's rule, with Go's regexp semantics (ASCII \\w, $ at the very end)."""

from __future__ import annotations

import pytest

from strongbox.errors import ConfigError
from strongbox.ids import MAX_ID_LENGTH, validate_id


@pytest.mark.parametrize("good", ["a", "A-b_c.d+e", "0", "...", "a..b", "x" * MAX_ID_LENGTH,
                                  "k8s.io-3f2a", "-leading-dash"])
def test_runc_ids_are_accepted(good: str) -> None:
    assert validate_id(good) == good


@pytest.mark.parametrize(("bad", "fragment"), [
    ("", "must not be empty"),
    ("abc\n", "'abc\\n': expected ASCII letters"),  # Python's $ would match before the \n
    ("caf\u00e9", "expected ASCII letters"),  # Python's \w is Unicode, Go's is not
    ("\u0661", "expected ASCII letters"),  # an Arabic-Indic digit is \d in Python
    ("a/b", "expected ASCII letters"),
    ("../x", "expected ASCII letters"),
    ("a b", "expected ASCII letters"),
    ("a,b", "expected ASCII letters"),  # runc's class admits ',', QEMU's syntax does not
    ("a\udcff", "'a\\udcff'"),  # an undecodable argv byte (surrogateescape)
    (".", "not a valid id"),
    ("..", "not a valid id"),
    ("x" * (MAX_ID_LENGTH + 1), f"longer than {MAX_ID_LENGTH} characters"),
])
def test_other_ids_are_one_short_line(bad: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_id(bad)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message and len(message) < 200
