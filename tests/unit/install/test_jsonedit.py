"""The JSON scanner: spans of objects and members, and the first-member mark."""

from __future__ import annotations

import json

import pytest

from strongbox.install import jsonedit

TEXT = '{"a": [1, {"b": "}"}], "k\\"ey": {"x": null, "y": -1.5e3}, "a": true}'


def test_scan_finds_members_and_spans() -> None:
    top = jsonedit.scan(TEXT)
    assert (top.start, top.end) == (0, len(TEXT))
    assert top.members is not None
    assert [m.key for m in top.members] == ["a", 'k"ey', "a"]
    values = [json.loads(TEXT[m.value.start:m.value.end]) for m in top.members]
    assert values == [[1, {"b": "}"}], {"x": None, "y": -1500.0}, True]
    inner = top.members[1].value
    assert inner.members is not None and [m.key for m in inner.members] == ["x", "y"]
    assert TEXT[inner.members[1].start:inner.members[1].end] == '"y": -1.5e3'


def test_member_is_the_last_of_duplicates_as_json_loads_keeps() -> None:
    top = jsonedit.scan(TEXT)
    found = top.member("a")
    assert found is not None and TEXT[found.value.start:found.value.end] == "true"
    assert top.member("missing") is None


def test_scan_skips_whitespace_and_bom() -> None:
    text = '\ufeff \r\n\t{ }\n'
    top = jsonedit.scan(text)
    assert text[top.start:top.end] == "{ }"
    assert top.members == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{}", '{ "k": 1 }'),
        ("{\n}", '{\n  "k": 1\n}'),
        ('{"a": 2}', '{ "k": 1, "a": 2}'),
        ('{\n    "a": 2\n}', '{\n    "k": 1,\n    "a": 2\n}'),
        ('{\r\n\t"a": 2\r\n}', '{\r\n\t"k": 1,\r\n\t"a": 2\r\n}'),
    ],
)
def test_insert_first_and_remove_it(text: str, expected: str) -> None:
    newline = "\r\n" if "\r\n" in text else "\n"
    top = jsonedit.scan(text)
    result = jsonedit.insert_first(text, top, '"k": 1', newline, "  ")
    assert result == expected
    span = jsonedit.first_member_span(result, jsonedit.scan(result))
    assert span is not None
    assert result[:span[0]] + result[span[1]:] == text


@pytest.mark.parametrize("text", ['{"k": 1}', '{ "k": 1 ,"a": 2}', "{}", '{ "k": 1,"a": 2}'])
def test_hand_written_first_members_are_not_taken_for_inserted(text: str) -> None:
    assert jsonedit.first_member_span(text, jsonedit.scan(text)) is None


@pytest.mark.parametrize(("text", "unit"), [("{}", "  "), ('{"a": 1}', "  "),
                                            ('{\n    "a": 1}', "    "), ('{\n\t"a": 1}', "\t")])
def test_indent_unit(text: str, unit: str) -> None:
    assert jsonedit.indent_unit(text, jsonedit.scan(text)) == unit
