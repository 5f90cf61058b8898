"""Where the root is, and a root that cannot be one: a single line naming it, for every verb."""

from __future__ import annotations

from pathlib import Path

import pytest

from strongbox.errors import StateDirError
from strongbox.runtime.paths import root_dir


def test_a_root_that_does_not_exist_yet_is_fine(tmp_path: Path) -> None:
    assert root_dir(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"


def test_a_root_that_is_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    with pytest.raises(StateDirError) as info:
        root_dir(str(tmp_path / "x"))
    assert str(info.value) == f"root {tmp_path / 'x'}: not a directory"


def test_a_root_under_a_regular_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    with pytest.raises(StateDirError) as info:
        root_dir(str(tmp_path / "x" / "sub"))
    assert str(info.value) == f"root {tmp_path / 'x' / 'sub'}: {tmp_path / 'x'} is not a directory"


def test_a_dangling_symlink_is_not_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    monkeypatch.setenv("STRONGBOX_ROOT", str(tmp_path / "link"))
    with pytest.raises(StateDirError, match="not a directory"):
        root_dir(None)
