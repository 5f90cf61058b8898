"""One hook's run: argv, env, stdin, timeout and the one-line failure (real processes)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from strongbox.sandbox.guestspec import guest_spec
from strongbox.sandbox.hooks import ContainerHooks, HookFailed, run_hook


def _py(code: str, **extra: object) -> dict[str, object]:
    return {"path": sys.executable, "args": ["argv0", "-c", code], **extra}


def test_the_hook_gets_the_state_its_argv_and_exactly_its_env(tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    code = ("import json, os, sys; json.dump({'stdin': sys.stdin.read(), 'argv0': "
            f"open('/proc/self/cmdline').read().split(chr(0))[0], 'env': dict(os.environ)}}, "
            f"open({str(out)!r}, 'w'))")
    error = asyncio.run(run_hook(_py(code, env=["A=1", "B=two=2"]), b'{"id": "c"}', "prestart"))
    assert error is None
    seen = json.loads(out.read_text())
    assert seen["stdin"] == '{"id": "c"}' and seen["argv0"] == "argv0"
    seen["env"].pop("LC_CTYPE", None)  # Python's own locale coercion (PEP 538), not ours
    assert seen["env"] == {"A": "1", "B": "two=2"}


def test_a_failure_is_one_line_with_its_status_and_what_it_said() -> None:
    code = "import sys; print('bad\\nthing', file=sys.stderr); sys.exit(3)"
    error = asyncio.run(run_hook(_py(code), b"{}", "createRuntime hook 0"))
    assert error == f"createRuntime hook 0 ({sys.executable}) failed: exit status 3: bad thing"


def test_a_hook_past_its_timeout_is_killed() -> None:
    error = asyncio.run(run_hook({"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1},
                                 b"{}", "poststart hook 0"))
    assert error == "poststart hook 0 (/bin/sleep): timed out after 1 s"


def test_a_missing_program_is_named() -> None:
    error = asyncio.run(run_hook({"path": "/no/such/hook"}, b"{}", "prestart hook 0"))
    assert error is not None and error.startswith("prestart hook 0 (/no/such/hook): cannot run")


def test_creation_hooks_stop_at_the_first_failure_and_later_kinds_warn(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "ran"
    hooks = ContainerHooks("c1", "/b", {
        "prestart": [_py("import sys; sys.exit(0)")],
        "createRuntime": [_py("import sys; sys.exit(5)")],
        "createContainer": [_py(f"open({str(marker)!r}, 'w')")],
        "poststop": [_py("import sys; sys.exit(6)")],
    })
    with pytest.raises(HookFailed, match=r"createRuntime hook 0 .* exit status 5"):
        asyncio.run(hooks.creating(123))
    assert not marker.exists()  # createContainer never ran
    asyncio.run(hooks.stopped(0))  # only a warning
    assert "poststop hook 0" in caplog.text and "exit status 6" in caplog.text


def test_the_state_follows_the_runtime_spec() -> None:
    hooks = ContainerHooks.of("c1", {"annotations": {"k": "v"}}, "/bundle")
    assert hooks.state("creating", 42) == {"ociVersion": "1.0.2", "id": "c1",
                                           "status": "creating", "pid": 42,
                                           "bundle": "/bundle", "annotations": {"k": "v"}}


def test_only_start_container_hooks_reach_the_guest_with_the_bundle() -> None:
    hook = {"path": "/bin/true"}
    spec = {"process": {"args": ["sh"]}, "hooks": {kind: [hook] for kind in (
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart",
        "poststop")}}
    out, _ = guest_spec(spec, bundle="/srv/b")
    assert out["hooks"] == {"startContainer": [hook]}
    assert out["strongbox"] == {"bundle": "/srv/b"}
    del spec["hooks"]["startContainer"]
    out, _ = guest_spec(spec, bundle="/srv/b")
    assert "hooks" not in out and "strongbox" not in out
