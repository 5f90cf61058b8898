"""The one reader of untrusted JSON files, and the structural check validate() shares with it.

Every failure is one ConfigError line that names the file (and the JSON path
when one value is at fault); nothing else escapes, whatever the bytes.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from strongbox.errors import ConfigError
from strongbox.oci.errors import SpecError
from strongbox.oci.jsonfile import (
    MAX_DEPTH,
    decode_json,
    first_problem,
    read_json_file,
)
from strongbox.oci.spec import validate, validate_process, validate_resources
from tests.unit.oci.specs import minimal_spec


def refused(data: bytes | str, where: str = "f.json") -> str:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    with pytest.raises(ConfigError) as info:
        decode_json(raw, where)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{where}: ")
    assert len(message) < 300
    return message


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- the file ------------------------------------------------------------------------------


def test_a_missing_file_names_the_argument_and_the_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_json_file(str(tmp_path / "nope.json"), "--process", missing="give one")
    assert str(info.value) == f"--process {tmp_path / 'nope.json'}: no such file (give one)"


def test_a_directory_is_not_a_json_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r": cannot read: is a directory, not a JSON file$"):
        read_json_file(str(tmp_path), "--resources")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    path.write_text("{}")
    path.chmod(0)
    with pytest.raises(ConfigError, match=r"secret.json: cannot read: permission denied$"):
        read_json_file(str(path))


def test_a_path_through_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("{}")
    with pytest.raises(ConfigError, match=r"file/x.json: cannot read: not a directory$"):
        read_json_file(str(tmp_path / "file" / "x.json"))


def test_stdin_is_read_for_dash_only_when_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(b'{"pids": {"limit": 5}}'))
    monkeypatch.setattr(sys, "stdin", fake)
    assert read_json_file("-", "--resources", stdin=True) == {"pids": {"limit": 5}}
    with pytest.raises(ConfigError, match=r"^-: no such file$"):
        read_json_file("-")


def test_the_size_cap_reads_no_more_than_one_byte_past_it(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"a": "x" * 100}))
    with pytest.raises(ConfigError, match=r"big.json: larger than 64 bytes$"):
        read_json_file(str(path), max_bytes=64)
    with pytest.raises(ConfigError, match=r"larger than 1 MiB$"):
        decode_json(b" " * ((1 << 20) + 1), "x", max_bytes=1 << 20)


# --- the text ------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "fragment"), [
    (b'{"a": "\xff"}', "not UTF-8 text (bad byte at offset 7)"),
    (b'{"a": "\xed\xa0\x80"}', "not UTF-8 text"),  # an encoded surrogate is not UTF-8
    ("{\n  \"a\": ,\n}", "invalid JSON at line 2, column 8: Expecting value"),
    ("\ufeff{}", "invalid JSON at line 1, column 1: Unexpected UTF-8 BOM"),
    ("{} {}", "invalid JSON at line 1, column 4: Extra data"),
    ("", "invalid JSON at line 1, column 1: Expecting value"),
    ('{"a": NaN}', "invalid JSON: NaN is not a JSON value"),
    ('[-Infinity]', "invalid JSON: -Infinity is not a JSON value"),
    ('{"a": ' + "9" * 5000 + "}", "invalid JSON: Exceeds the limit (4300 digits)"),
    (nested(100_000), f"invalid JSON: nested more than {MAX_DEPTH} levels deep"),
    (nested(MAX_DEPTH + 1), f"expected a document nested at most {MAX_DEPTH} levels deep"),
    ('{"a": 1e999}', "a: expected a finite number, got inf"),
    ('{"a": [-1e400]}', "a[0]: expected a finite number, got -inf"),
    ('{"env": ["PATH=/bin\\ud800"]}',
     "env[0]: expected Unicode text, got a lone surrogate (\\ud800) at character 9"),
    ('{"x": {"\\udfffkey": 1}}', "x: expected keys that are text, got a lone surrogate"),
    ('{"a b": {"c.d": ["\\udc00"]}}', "['a b']['c.d'][0]: expected Unicode text"),
    ('"\\ud800"', "f.json: expected Unicode text"),
])
def test_what_is_not_plain_json_is_one_line_naming_the_place(data: bytes | str,
                                                            fragment: str) -> None:
    assert fragment in refused(data)


def test_what_is_plain_json_is_returned_as_decoded() -> None:
    text = '{"a": [1, 2.5, true, null, "\\ud83d\\ude00 é"], "b": {}}'
    assert decode_json(text.encode(), "x") == json.loads(text)
    assert decode_json(nested(MAX_DEPTH).encode(), "x") is not None


def test_a_lone_surrogate_far_into_a_string_is_located_not_quoted() -> None:
    message = refused('{"args": ["' + "x" * 5000 + '\\ud800"]}')
    assert message.endswith("args[0]: expected Unicode text, got a lone surrogate (\\ud800) "
                            "at character 5000")


def test_a_long_path_is_cut() -> None:
    key = "k" * 300
    message = refused('{"' + key + '": "\\ud800"}')
    assert "..." in message and len(message) < 250


# --- first_problem, and validate() which shares it ------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ({"a": (1, 2)}, ("a", "a JSON value", "<tuple>")),
    ({1: "x"}, ("", "keys that are text", "a key of type int")),
    ([float("nan")], ("[0]", "a finite number", "nan")),
    ({"ok": [1, "é", None, True, 2.5]}, None),
])
def test_first_problem(value: object, expected: tuple[str, str, str] | None) -> None:
    assert first_problem(value) == expected


def test_first_problem_is_iterative_at_any_depth() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert first_problem(deep) == ("", f"a document nested at most {MAX_DEPTH} levels deep",
                                   "deeper")


def test_validate_refuses_a_lone_surrogate_from_any_source() -> None:
    spec = minimal_spec()
    spec["process"]["env"] = ["PATH=/bin\ud800"]
    with pytest.raises(SpecError) as info:
        validate(spec)
    assert info.value.path == "process.env[0]"
    assert str(info.value) == ("config.json: process.env[0]: expected Unicode text, got a lone "
                               "surrogate (\\ud800) at character 9")


def test_validate_process_and_resources_refuse_infinities_in_unknown_fields() -> None:
    with pytest.raises(SpecError, match=r"^config.json: process.x: expected a finite number"):
        validate_process({"args": ["sh"], "cwd": "/", "x": float("inf")})
    with pytest.raises(SpecError, match=r"linux.resources.memory.y: expected a finite number"):
        validate_resources({"memory": {"y": float("-inf")}})
