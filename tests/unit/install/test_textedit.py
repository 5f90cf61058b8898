"""Marked blocks and lines in TOML text: added, found and removed exactly."""

from __future__ import annotations

import tomllib

import pytest

from strongbox.install import textedit
from strongbox.install.textedit import BEGIN, BEGIN_CREATED, END, LINE_MARK


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("a", ["a"]),
        ("a\n", ["a\n"]),
        ("a\r\nb", ["a\r\n", "b"]),
        ("a\x0cb\u2028c\n\n", ["a\x0cb\u2028c\n", "\n"]),  # only \n ends a line
    ],
)
def test_split_lines_splits_on_newline_only(text: str, lines: list[str]) -> None:
    assert textedit.split_lines(text) == lines
    assert "".join(lines) == text


@pytest.mark.parametrize(
    ("text", "newline"),
    [("", "\n"), ("a", "\n"), ("a\nb\r\n", "\n"), ("a\r\nb\n", "\r\n"), ("\n", "\n")],
)
def test_newline_of_follows_the_first_line(text: str, newline: str) -> None:
    assert textedit.newline_of(text) == newline


def test_a_block_in_a_missing_file_says_it_created_it() -> None:
    text = textedit.append_block(None, ["a = 1"])
    assert text == f"{BEGIN_CREATED}\na = 1\n{END}\n"
    assert textedit.remove_marks(text) == ("", True)


def test_a_block_in_an_existing_file_does_not() -> None:
    text = textedit.append_block("x = 0\n", ["a = 1"])
    assert text == f"x = 0\n{BEGIN}\na = 1\n{END}\n"
    assert textedit.remove_marks(text) == ("x = 0\n", False)


def test_a_file_without_final_newline_keeps_having_none() -> None:
    text = textedit.append_block("x = 0", ["a = 1"])
    assert text == f"x = 0\n{BEGIN}\na = 1\n{END}"
    assert textedit.remove_marks(text) == ("x = 0", False)


def test_crlf_files_get_crlf_lines() -> None:
    text = textedit.append_block("x = 0\r\n", ["a = 1"])
    assert text == f"x = 0\r\n{BEGIN}\r\na = 1\r\n{END}\r\n"
    inserted = textedit.insert_line("[t]\r\nx = 0\r\n", 0, "a = 1")
    assert inserted == f"[t]\r\na = 1{LINE_MARK}\r\nx = 0\r\n"
    assert textedit.remove_marks(inserted)[0] == "[t]\r\nx = 0\r\n"


def test_a_line_after_a_last_header_without_newline() -> None:
    text = textedit.insert_line("[t]", 0, "a = 1")
    assert text == f"[t]\na = 1{LINE_MARK}"
    assert tomllib.loads(text) == {"t": {"a": 1}}
    assert textedit.remove_marks(text)[0] == "[t]"


def test_a_line_is_indented_like_its_table() -> None:
    assert textedit.insert_line("  [t]\n    x = 0\n", 0, "a = 1") == (
        f"  [t]\n    a = 1{LINE_MARK}\n    x = 0\n")
    assert textedit.insert_line("  [t]\n[u]\n", 0, "a = 1") == f"  [t]\n  a = 1{LINE_MARK}\n[u]\n"


def test_text_after_the_block_is_kept() -> None:
    text = textedit.append_block("x = 0\n", ["a = 1"]) + "y = 2\n"
    assert textedit.remove_marks(text)[0] == "x = 0\ny = 2\n"
    assert textedit.has_marks(text)
    assert not textedit.has_marks("x = 0\n")


def test_a_block_without_end_is_left_alone() -> None:
    text = f"x = 0\n{BEGIN}\na = 1\n"
    assert textedit.remove_marks(text) == (text, False)


@pytest.mark.parametrize(
    "header",
    ["[engine.runtimes]", "  [engine.runtimes]", '["engine"."runtimes"]', "[ engine . runtimes ]",
     "['engine'.runtimes]", "[engine.runtimes]  # comment", "[engine.runtimes]\r"],
)
def test_find_table_recognizes_header_spellings(header: str) -> None:
    assert textedit.find_table(f"[engine]\n{header}\nx = 1\n", "engine.runtimes") == 1


@pytest.mark.parametrize(
    "text",
    ["[engine]\n", "[[engine.runtimes]]\n", "[engine.runtimes.crun]\n", "# [engine.runtimes]\n",
     "[engine_runtimes]\n", "[engine.runtimes] x = 1\n"],
)
def test_find_table_ignores_other_lines(text: str) -> None:
    assert textedit.find_table(text, "engine.runtimes") is None


@pytest.mark.parametrize(
    "value", ["/usr/bin/strongbox", 'a "quoted" \\path', "t\u00e9st \U0001f600", "tab\there",
              "del\x7f", "nl\nline"],
)
def test_toml_string_round_trips(value: str) -> None:
    assert tomllib.loads(f"k = {textedit.toml_string(value)}")["k"] == value
