"""startContainer hooks as the container's init runs them: real processes, on the host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strongbox.container.errors import ContainerError
from strongbox.container.hooks import Hook, StartHooks, run_hook

STATE = b'{"id": "c1"}'


def _hook(script: str, **extra: object) -> Hook:
    return Hook(0, {"path": "/bin/sh", "args": ["sh", "-c", script], **extra})


def test_a_hook_gets_the_state_on_stdin_exactly_its_env_and_its_argv(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    hook = _hook(f'cat > {out}; echo "$0 $A" >> {out}; env | grep -c . >> {out}',
                 env=["A=b"])
    assert run_hook(hook, STATE) is None
    first, count = out.read_text().splitlines()
    assert first == '{"id": "c1"}sh b'  # the state, then argv[0] and the hook's env
    assert int(count) <= 3  # A, and what sh itself adds (PWD, SHLVL): nothing inherited


def test_a_failure_names_the_hook_its_status_and_what_it_said() -> None:
    error = run_hook(_hook("echo nope >&2; exit 3"), STATE)
    assert error == "startContainer hook 0 (/bin/sh) failed: exit status 3: nope"
    assert run_hook(_hook("kill -KILL $$"), STATE) == \
        "startContainer hook 0 (/bin/sh) failed: killed by signal 9"


def test_a_hook_that_ignores_its_stdin_is_fine() -> None:
    assert run_hook(_hook("exit 0"), b"x" * 200_000) is None


def test_a_missing_program_and_a_timeout() -> None:
    missing = Hook(1, {"path": "/no/such/hook"})
    assert run_hook(missing, STATE) == \
        "startContainer hook 1 (/no/such/hook): cannot run: No such file or directory"
    slow = _hook("sleep 30 & sleep 30", timeout=1)
    assert run_hook(slow, STATE) == "startContainer hook 0 (/bin/sh): timed out after 1 s"


def test_the_state_is_runcs_and_the_first_failure_stops_the_rest(tmp_path: Path) -> None:
    marker = tmp_path / "second"
    hooks = StartHooks({"hooks": {"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "exit 2"]},
        {"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}"]}]},
        "annotations": {"a": "b"}, "strongbox": {"bundle": "/b"}})
    state = json.loads(hooks.state("c1"))
    assert state["status"] == "created" and state["bundle"] == "/b"
    assert state["annotations"] == {"a": "b"} and state["id"] == "c1"
    with pytest.raises(ContainerError, match="exit status 2") as info:
        hooks.run("c1")
    assert info.value.stage == "hook" and not marker.exists()


def test_a_relative_path_is_refused_before_anything_runs() -> None:
    with pytest.raises(ContainerError, match=r"hooks.startContainer\[0\].path"):
        StartHooks({"hooks": {"startContainer": [{"path": "sh"}]}})
