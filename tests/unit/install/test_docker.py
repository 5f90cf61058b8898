"""docker: the four forms of strongbox's entry, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strongbox.install import ConfigFileError, UnmanagedEntryError
from strongbox.install.docker import DockerConfig

PATH = Path("/etc/docker/daemon.json")
RUNTIME = "/usr/local/bin/strongbox"


def _install(before: bytes | None, runtime: str = RUNTIME) -> bytes:
    after = DockerConfig(PATH, runtime).install(before).after
    assert after is not None
    return after


def test_a_missing_file_is_created_as_an_indented_document() -> None:
    assert _install(None) == (b'{\n  "runtimes": {\n    "strongbox": {\n'
                              b'      "path": "/usr/local/bin/strongbox"\n    }\n  }\n}\n')


def test_the_entry_goes_first_into_existing_runtimes() -> None:
    before = b'{\n  "runtimes": {\n    "crun": {"path": "crun"}\n  }\n}\n'
    assert _install(before) == (b'{\n  "runtimes": {\n'
                                b'    "strongbox": {"path": "/usr/local/bin/strongbox"},\n'
                                b'    "crun": {"path": "crun"}\n  }\n}\n')


def test_without_runtimes_the_key_is_added_first() -> None:
    before = b'{\n  "debug": true\n}\n'
    assert _install(before) == (b'{\n  "runtimes": {"strongbox": {"path": '
                                b'"/usr/local/bin/strongbox"}},\n  "debug": true\n}\n')


@pytest.mark.parametrize(
    "before",
    [b'{"runtimes": {}}', b'{"runtimes": {"a": {"path": "a"}}}', b"{}", b'{"debug": true}', b"",
     None],
)
def test_no_form_is_mistaken_for_another(before: bytes | None) -> None:
    """Each starting point strips back to itself, never to another one's text."""
    after = _install(before)
    assert DockerConfig(PATH, RUNTIME).uninstall(after).after == before


@pytest.mark.parametrize(
    "before",
    [
        b'{\n  "runtimes": {\n    "strongbox": { "path": "/usr/local/bin/strongbox" }\n  }\n}\n',
        b'{"runtimes": {"crun": {"path": "crun"}, "strongbox": {"path": "/x"}}}',
        b'{"runtimes": {"strongbox": {"path": "/x", "runtimeArgs": ["--debug"]}}}',
        b'{"runtimes": { "strongbox": {"path": "/x"} ,"crun": {"path": "crun"}}}',
    ],
)
def test_a_strongbox_runtime_someone_else_added_is_refused(before: bytes) -> None:
    with pytest.raises(UnmanagedEntryError, match="leave docker out with --only"):
        DockerConfig(PATH, RUNTIME).install(before)
    change = DockerConfig(PATH, RUNTIME).uninstall(before)
    assert not change.changed
    assert change.message == f"docker: left runtime strongbox alone (not added by strongbox " \
                             f"install) in {PATH}"


def test_an_entry_edited_after_install_is_no_longer_strongboxs() -> None:
    after = _install(b'{\n  "runtimes": {}\n}\n')
    edited = after.replace(b'{"path": ', b'{"runtimeArgs": [], "path": ')
    assert not DockerConfig(PATH, RUNTIME).uninstall(edited).changed
    with pytest.raises(UnmanagedEntryError):
        DockerConfig(PATH, RUNTIME).install(edited)


@pytest.mark.parametrize(
    ("before", "problem"),
    [
        (b'{"debug": true,}', "is not valid JSON: "),
        (b"[]", "is not valid JSON: the top level is a list, not an object"),
        (b'"runtimes"', "is not valid JSON: the top level is a str, not an object"),
        (b'{"a": 1}{"b": 2}', "is not valid JSON: Extra data"),
        (b'{"runtimes": []}', '"runtimes" is not an object'),
        (b'{"runtimes": null}', '"runtimes" is not an object'),
        (b"\xef\xbb\xbf\xef\xbb\xbf{}", "is not valid JSON"),
    ],
)
def test_invalid_files_are_refused_in_one_line(before: bytes, problem: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        DockerConfig(PATH, RUNTIME).install(before)
    assert str(info.value).startswith(f"{PATH}: ")
    assert problem in str(info.value)
    assert "\n" not in str(info.value)


def test_duplicate_keys_edit_the_one_docker_reads() -> None:
    before = b'{"runtimes": {"a": {"path": "a"}}, "runtimes": {"b": {"path": "b"}}}'
    after = _install(before)
    assert json.loads(after)["runtimes"] == {"strongbox": {"path": RUNTIME}, "b": {"path": "b"}}
    assert DockerConfig(PATH, RUNTIME).uninstall(after).after == before


def test_odd_runtime_paths_are_escaped() -> None:
    odd = '/opt/"str\\ong"/b\u00efn/strongbox'
    for before in (None, b"", b"{}", b'{"runtimes": {}}'):
        after = _install(before, odd)
        assert json.loads(after)["runtimes"]["strongbox"] == {"path": odd}
        assert DockerConfig(PATH, odd).install(after).after == after
        assert DockerConfig(PATH, RUNTIME).uninstall(after).after == before
