"""podman: where the runtime line goes, and what is refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from strongbox.install import ConfigFileError, UnmanagedEntryError
from strongbox.install.podman import PodmanConfig

PATH = Path("/etc/containers/containers.conf")
RUNTIME = "/usr/local/bin/strongbox"


def _install(before: bytes | None) -> str:
    after = PodmanConfig(PATH, RUNTIME).install(before).after
    assert after is not None
    return after.decode()


def test_the_line_goes_right_under_an_existing_header() -> None:
    before = b'[engine.runtimes]\ncrun = ["/usr/bin/crun"]\n\n[network]\nx = 1\n'
    assert _install(before) == ('[engine.runtimes]\nstrongbox = ["/usr/local/bin/strongbox"]'
                                '  # strongbox install\ncrun = ["/usr/bin/crun"]\n\n'
                                '[network]\nx = 1\n')


def test_without_the_table_a_block_is_appended() -> None:
    assert _install(b'[engine]\nruntime = "crun"\n') == (
        '[engine]\nruntime = "crun"\n# strongbox install: begin\n[engine.runtimes]\n'
        'strongbox = ["/usr/local/bin/strongbox"]\n# strongbox install: end\n')


def test_runtime_paths_are_toml_strings() -> None:
    odd = '/opt/str"ong\\box/b\u00efn/strongbox'
    after = PodmanConfig(PATH, odd).install(b"").after
    assert after is not None
    assert tomllib.loads(after.decode())["engine"]["runtimes"]["strongbox"] == [odd]


@pytest.mark.parametrize(
    "before",
    [
        b'[engine.runtimes]\nstrongbox = ["/usr/bin/strongbox"]\n',
        b'[engine.runtimes]\nstrongbox = ["/usr/local/bin/strongbox"]\n',  # same value, by hand
        b'[engine]\nruntimes.strongbox = ["/x"]\n',
    ],
)
def test_a_strongbox_runtime_someone_else_added_is_refused(before: bytes) -> None:
    with pytest.raises(UnmanagedEntryError, match="leave podman out with --only"):
        PodmanConfig(PATH, RUNTIME).install(before)


@pytest.mark.parametrize(
    "before",
    [b'[engine]\nruntimes = { crun = ["/usr/bin/crun"] }\n',
     b'[engine]\nruntimes.crun = ["/usr/bin/crun"]\n',
     b'engine.runtimes.crun = ["/usr/bin/crun"]\n'],
)
def test_a_runtimes_table_in_another_form_is_refused_with_advice(before: bytes) -> None:
    with pytest.raises(ConfigFileError, match=r"inline table or with dotted keys.*add "
                       r'strongbox = \["/usr/local/bin/strongbox"\] to it by hand'):
        PodmanConfig(PATH, RUNTIME).install(before)


def test_a_header_inside_a_string_is_not_edited() -> None:
    before = b'[containers]\nnote = """\n[engine.runtimes]\n"""\n'
    with pytest.raises(ConfigFileError, match="cannot add strongbox where podman would read it"):
        PodmanConfig(PATH, RUNTIME).install(before)


def test_an_edited_managed_line_is_replaced_not_duplicated() -> None:
    after = _install(b"[engine.runtimes]\n")
    edited = after.replace(RUNTIME, "/old/strongbox").encode()
    change = PodmanConfig(PATH, RUNTIME).install(edited)
    assert change.message.startswith("podman: updated runtime strongbox in ")
    assert change.after == after.encode()


def test_invalid_toml_is_refused() -> None:
    with pytest.raises(ConfigFileError, match=r"^/etc/containers/containers.conf: is not valid "
                       r"TOML: .*; nothing was changed$"):
        PodmanConfig(PATH, RUNTIME).install(b"[engine\n")
