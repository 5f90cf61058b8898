"""Program lookup, the exec environment and exit statuses."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from strongbox.container.errors import ContainerError
from strongbox.container.plan import ProcessPlan
from strongbox.container.process import environment, exit_code, home_of, lookpath


@pytest.fixture
def bins(tmp_path: Path) -> Path:
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    (tmp_path / "a" / "tool").write_text("not executable")
    (tmp_path / "b" / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "b" / "tool").chmod(0o755)
    (tmp_path / "b" / "dir").mkdir()
    return tmp_path


def test_lookpath_skips_non_executables(bins: Path) -> None:
    assert lookpath("tool", f"{bins}/a:{bins}/b") == f"{bins}/b/tool"


def test_lookpath_not_found(bins: Path) -> None:
    with pytest.raises(ContainerError) as info:
        lookpath("dir", f"{bins}/a:{bins}/b")
    err = info.value
    assert str(err) == 'exec "dir": executable file not found in $PATH'
    assert (err.stage, err.errno, exit_code(err)) == ("exec", errno.ENOENT, 127)


def test_lookpath_with_a_slash_is_checked_directly(bins: Path) -> None:
    assert lookpath(f"{bins}/b/tool", "") == f"{bins}/b/tool"
    with pytest.raises(ContainerError) as info:
        lookpath(f"{bins}/a/tool", "/bin")
    assert str(info.value) == f'exec "{bins}/a/tool": permission denied'
    assert exit_code(info.value) == 126
    with pytest.raises(ContainerError, match="no such file or directory") as missing:
        lookpath(f"{bins}/nope", "/bin")
    assert exit_code(missing.value) == 127


def test_empty_path_element_means_current_directory(bins: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(bins / "b")
    assert lookpath("tool", "") == "./tool"


def test_other_stages_exit_1() -> None:
    assert exit_code(ContainerError("mount", "mount /x: boom", errno.ENOENT)) == 1


def test_environment_last_wins_and_home_from_passwd(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    assert home_of(1000, str(passwd)) == "/home/user"
    assert home_of(4242, str(passwd)) == "/"
    plan = ProcessPlan({"args": ["x"], "env": ["A=1", "A=2", "EMPTY=", "junk"]}, {})
    assert environment(plan) == {"A": "2", "EMPTY": "", "HOME": home_of(0)}
    plan = ProcessPlan({"args": ["x"], "env": ["HOME=/h"]}, {})
    assert environment(plan) == {"HOME": "/h"}


def test_executable_bit_for_other_users(bins: Path) -> None:
    os.chmod(bins / "b" / "tool", 0o700)
    assert lookpath("tool", f"{bins}/b") == f"{bins}/b/tool"  # any x bit, like Go
