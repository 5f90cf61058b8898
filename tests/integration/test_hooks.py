"""OCI hooks run where the runtime spec and a VM allow, with its failure rules (issue 12).

Each hook here is a small Python program that records the state it read on
stdin, its argv, its environment and what the state's pid is on the host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.framework import cli
from tests.framework.bundle import make_bundle
from tests.framework.procs import qemu_pids, wait_until

pytestmark = [pytest.mark.vm, pytest.mark.usefixtures("factory_mode")]

RECORDER = """
import json, os, sys
kind, out = sys.argv[1], sys.argv[2]
state = json.load(sys.stdin)
pid = state["pid"]
try:
    exe = os.readlink(f"/proc/{pid}/exe") if pid else ""
except OSError:
    exe = "gone"
with open(os.path.join(out, kind + ".json"), "w") as f:
    json.dump({"state": state, "argv": sys.argv, "env": dict(os.environ), "exe": exe}, f)
sys.exit(int(os.environ.get("HOOK_EXIT", "0")))
"""
KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")


def _hook(kind: str, out: Path, *, code: int = 0, **extra: Any) -> dict[str, Any]:
    return {"path": sys.executable, "args": ["recorder", "-c", RECORDER, kind, str(out)],
            "env": ["FROM_SPEC=yes", f"HOOK_EXIT={code}"], **extra}


def _seen(out: Path, kind: str) -> dict[str, Any] | None:
    path = out / f"{kind}.json"
    return json.loads(path.read_text()) if path.exists() else None


class Hooked:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root, self.tmp = root, tmp
        self.out = tmp / "hooks"
        self.out.mkdir()

    def bundle(self, args: list[str], hooks: dict[str, list[dict[str, Any]]],
               **changes: Any) -> Path:
        return make_bundle(self.tmp / "b", args, hooks=hooks, **changes)

    def __call__(self, *args: str | Path) -> cli.Result:
        return cli.run("--root", self.root, *args)

    def create(self, cid: str, bundle: Path) -> cli.Result:
        argv = cli.strongbox_argv("--root", self.root, "create", "--bundle", bundle, cid)
        return cli.run_to_files(argv, self.tmp / f"{cid}.out", self.tmp / f"{cid}.err")


@pytest.fixture
def hooked(no_leaks: Path, tmp_path: Path, guest_assets: dict[str, Path]) -> Iterator[Hooked]:
    h = Hooked(no_leaks, tmp_path)
    yield h
    for entry in (no_leaks / "containers").glob("*"):
        h("delete", "--force", entry.name)


def test_each_host_kind_runs_in_its_place_with_the_state_on_stdin(hooked: Hooked) -> None:
    hooks = {kind: [_hook(kind, hooked.out)] for kind in KINDS if kind != "startContainer"}
    hooked.create("hk", hooked.bundle(["sleep", "600"], hooks)).check()
    (qemu,) = qemu_pids(str(hooked.root))
    for kind in ("prestart", "createRuntime", "createContainer"):
        seen = _seen(hooked.out, kind)
        assert seen is not None, kind
        assert seen["state"]["status"] == "creating"
        assert seen["state"]["id"] == "hk" and seen["state"]["bundle"] == str(hooked.tmp / "b")
        # the state's pid is what the CLI reports (the monitor, a host pid), and it is in
        # the sandbox's network namespace: QEMU's
        pid = seen["state"]["pid"]
        assert pid == hooked("state", "hk").json()["pid"] and "python" in seen["exe"]
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/proc/{qemu}/ns/net").st_ino
        assert seen["argv"][0] == "-c" or seen["argv"][-2:] == [kind, str(hooked.out)]
        assert seen["env"].get("FROM_SPEC") == "yes" and "PATH" not in seen["env"]
    assert _seen(hooked.out, "poststart") is None
    hooked("start", "hk").check()
    assert wait_until(lambda: _seen(hooked.out, "poststart") is not None, 10)
    assert _seen(hooked.out, "poststart")["state"]["status"] == "running"  # type: ignore[index]
    assert _seen(hooked.out, "poststop") is None
    hooked("delete", "--force", "hk").check()
    poststop = _seen(hooked.out, "poststop")
    assert poststop is not None and poststop["state"]["status"] == "stopped"


#: A startContainer hook is a program of the container's root: it records its stdin, argv,
#: env, the hostname (the container's UTS namespace) and whether the workload ran already.
START_HOOK = """#!/bin/sh
cat > /tmp/state.json
echo "$0 $1 FROM_SPEC=$FROM_SPEC TERM=${TERM-unset} $(hostname) $(id -u)" > /tmp/hook.seen
[ -e /tmp/workload-ran ] && echo late >> /tmp/hook.seen
exit "${HOOK_EXIT:-0}"
"""


def _start_hook_bundle(hooked: Hooked, code: int) -> Path:
    hook = {"path": "/hook.sh", "args": ["hook", "arg1"],
            "env": ["FROM_SPEC=yes", f"HOOK_EXIT={code}"]}
    bundle = hooked.bundle(["sh", "-c", "touch /tmp/workload-ran; cat /tmp/hook.seen"],
                           {"startContainer": [hook],
                            "poststop": [_hook("poststop", hooked.out)]},
                           root__readonly=False, annotations={"org.example": "x"})
    script = bundle / "rootfs" / "hook.sh"  # only in the container's root, not the host's
    script.write_text(START_HOOK)
    script.chmod(0o755)
    return bundle


def test_a_start_container_hook_runs_in_the_container_just_before_the_workload(
        hooked: Hooked) -> None:
    bundle = _start_hook_bundle(hooked, 0)
    result = hooked("run", "--bundle", bundle, "sc").check()
    assert result.stdout == "/hook.sh arg1 FROM_SPEC=yes TERM=unset runc 0\n"
    state = json.loads((bundle / "rootfs" / "tmp" / "state.json").read_text())
    assert state.pop("bundle") in ("", str(bundle))  # the host's path, once plan.py passes it
    # runc's: the status is created, the pid the init as the container sees it
    assert state == {"ociVersion": "1.0.2", "id": "sc", "status": "created", "pid": 1,
                     "annotations": {"org.example": "x"}}
    assert _seen(hooked.out, "poststop") is not None


def test_a_failing_start_container_hook_fails_run_and_leaves_nothing(hooked: Hooked) -> None:
    bundle = _start_hook_bundle(hooked, 3)
    result = hooked("run", "--bundle", bundle, "sf")
    cli.assert_one_line_error(result, "startContainer hook 0 (/hook.sh)", "exit status 3")
    assert result.returncode == 1 and result.stdout == ""
    assert not (bundle / "rootfs" / "tmp" / "workload-ran").exists()
    assert not (hooked.root / "containers" / "sf").exists()
    assert wait_until(lambda: _seen(hooked.out, "poststop") is not None, 10)


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_creation_hook_fails_create_and_leaves_nothing(hooked: Hooked,
                                                                  kind: str) -> None:
    hooks = {kind: [_hook(kind, hooked.out, code=3)],
             "poststop": [_hook("poststop", hooked.out)]}
    result = hooked.create("hf", hooked.bundle(["true"], hooks))
    cli.assert_one_line_error(result, f"{kind} hook 0", "exit status 3")
    assert not (hooked.root / "containers" / "hf").exists()
    assert _seen(hooked.out, "poststop") is not None  # the lifecycle goes on to poststop


def test_a_hook_past_its_timeout_is_killed_and_fails_run(hooked: Hooked) -> None:
    slow = {"path": "/bin/sleep", "args": ["sleep", "60"], "timeout": 1}
    result = hooked("run", "--bundle", hooked.bundle(["true"], {"createRuntime": [slow]}),
                    "ht")
    cli.assert_one_line_error(result, "createRuntime hook 0 (/bin/sleep)", "timed out after 1 s")
    assert not (hooked.root / "containers" / "ht").exists()


def test_a_failing_poststart_or_poststop_hook_is_only_a_warning(hooked: Hooked) -> None:
    hooks = {"poststart": [_hook("poststart", hooked.out, code=4)],
             "poststop": [_hook("poststop", hooked.out, code=5)]}
    result = hooked("run", "--bundle", hooked.bundle(["sh", "-c", "exit 7"], hooks), "hw")
    assert result.returncode == 7, result.stderr
    assert "poststart hook 0" in result.stderr and "exit status 4" in result.stderr
    assert _seen(hooked.out, "poststart") is not None
    assert _seen(hooked.out, "poststop") is not None


def test_poststop_runs_after_a_failed_start(hooked: Hooked) -> None:
    hooks = {"poststop": [_hook("poststop", hooked.out)]}
    result = hooked("run", "--bundle", hooked.bundle(["no-such-binary"], hooks), "hs")
    assert result.returncode == 127
    assert wait_until(lambda: _seen(hooked.out, "poststop") is not None, 10)


def test_a_prestart_hook_entering_the_pids_netns_reaches_the_sandbox(hooked: Hooked) -> None:
    """Docker's libnetwork-setkey case: the hook enters /proc/<pid>/ns/net of the state it
    is given and creates an interface there; that is the namespace QEMU runs in (not the
    host's), and the pid `state` reports is in it too."""
    code = ("import json, subprocess, sys; pid = json.load(sys.stdin)['pid']; "
            "subprocess.run(['nsenter', '-t', str(pid), '-n', 'ip', 'link', 'add', 'sbhook0', "
            "'type', 'veth', 'peer', 'name', 'sbhook1'], check=True)")
    hook = {"path": sys.executable, "args": ["py", "-c", code],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}
    try:
        hooked.create("nh", hooked.bundle(["sleep", "600"], {"prestart": [hook]})).check()
        (qemu,) = qemu_pids(str(hooked.root))
        sandbox_ns = os.stat(f"/proc/{qemu}/ns/net").st_ino
        assert sandbox_ns != os.stat("/proc/self/ns/net").st_ino  # a namespace of its own
        state_pid = hooked("state", "nh").check().json()["pid"]
        assert os.stat(f"/proc/{state_pid}/ns/net").st_ino == sandbox_ns
        inside = subprocess.run(["nsenter", "-t", str(qemu), "-n", "ip", "link", "show",
                                 "sbhook0"], capture_output=True)
        assert inside.returncode == 0, inside.stderr
        on_host = subprocess.run(["ip", "link", "show", "sbhook0"], capture_output=True)
        assert on_host.returncode != 0
    finally:
        for name in ("sbhook0", "sbhook1"):  # never on the host
            subprocess.run(["ip", "link", "del", name], capture_output=True)
