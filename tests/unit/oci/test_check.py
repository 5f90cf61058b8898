"""How values are shown in error messages: short, one line, JSON-like."""

from __future__ import annotations

import pytest

from strongbox.oci._check import ABSENT, show


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (ABSENT, "nothing"),
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (1.5, "1.5"),
        ("netwrk", "'netwrk'"),
        ("a\nb", "'a\\nb'"),
        ([], "[]"),
        ([1, "a", None], "[1, 'a', null]"),
        ({"uid": 0, "x": [True]}, "{'uid': 0, 'x': [true]}"),
        ((1, 2), "<tuple>"),
        (2**64, "18446744073709551616"),
        pytest.param(10**5000, "a 16610-bit integer", id="huge-int"),
    ],
)
def test_show(value: object, text: str) -> None:
    assert show(value) == text


@pytest.mark.parametrize("value", ["x" * 1000, list(range(1000)), {str(i): i for i in range(500)}])
def test_show_cuts_long_values(value: object) -> None:
    text = show(value)
    assert len(text) == 60
    assert text.endswith("...")
