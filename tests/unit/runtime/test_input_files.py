"""The CLI's own input files, ``exec --process`` and ``update -r``: read and checked up front.

Both go through the one reader of untrusted JSON and the OCI rules before any
flag is merged in, and every error names the argument and the file (never
"config.json", which the user did not write here).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import pytest

from strongbox.errors import ConfigError
from strongbox.runtime.commands.control_cmds import read_resources_file, resources_from_args
from strongbox.runtime.commands.exec_cmd import build_process, read_process_file


def write(tmp_path: Path, value: object) -> str:
    path = tmp_path / "input.json"
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return str(path)


@pytest.mark.parametrize(("value", "message"), [
    ({"args": []}, "args: expected a non-empty array of strings, got []"),
    ({"args": ["sh"], "env": "A=1"}, "env: expected an array of strings, got 'A=1'"),
    ([1], "expected a JSON object (an OCI process), got list"),
    ('{"args": ["sh"], "env": ["\\ud800"]}', "env[0]: expected Unicode text"),
])
def test_a_bad_process_file_names_the_file_and_the_field(tmp_path: Path, value: object,
                                                         message: str) -> None:
    path = write(tmp_path, value)
    with pytest.raises(ConfigError) as info:
        read_process_file(path)
    assert str(info.value).startswith(f"--process {path}: {message}")


def test_flags_are_applied_to_the_checked_process(tmp_path: Path) -> None:
    path = write(tmp_path, {"args": ["sh"], "env": ["A=1", "B=2"]})
    args = argparse.Namespace(process=path, command=[], tty=False, env=["B=3"], cwd="/srv",
                              user="5:6", additional_gids=[], cap=[], no_new_privs=True)
    process = build_process(args, None)
    assert process["env"] == ["A=1", "B=3"]
    assert process["cwd"] == "/srv" and process["noNewPrivileges"] is True
    assert process["user"] == {"uid": 5, "gid": 6, "additionalGids": []}


@pytest.mark.parametrize(("value", "message"), [
    ({"memory": 5}, "memory: expected an object, got 5"),
    ({"pids": {"limit": "x"}}, "pids.limit: expected an int64, got 'x'"),
    ("null", "expected a JSON object (OCI linux.resources), got NoneType"),
])
def test_a_bad_resources_file_names_the_file_and_the_field(tmp_path: Path, value: object,
                                                           message: str) -> None:
    path = write(tmp_path, value)
    with pytest.raises(ConfigError) as info:
        read_resources_file(path)
    assert str(info.value) == f"--resources {path}: {message}"


def test_resources_from_stdin_and_flags_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"memory": {"swap": 1}}')))
    args = argparse.Namespace(resources="-", memory="1m", memory_swap=None,
                              memory_reservation=None, cpu_quota=None, cpu_period=None,
                              cpu_shares=None, cpuset_cpus=None, cpuset_mems=None,
                              pids_limit=7)
    assert resources_from_args(args) == {"memory": {"swap": 1, "limit": 1 << 20},
                                         "pids": {"limit": 7}}
