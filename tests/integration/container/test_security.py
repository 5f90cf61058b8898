"""Users, capabilities, no_new_privs, seccomp, rlimits, oom_score_adj: read from /proc/self."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strongbox.container.capabilities import mask_of
from tests.framework.bundle import DEFAULT_CAPS
from tests.integration.container.runner import run, shell

STATUS = "grep -E '^(Uid|Gid|Groups|Cap...|NoNewPrivs|Seccomp):' /proc/self/status"


def _status(stdout: str) -> dict[str, str]:
    return {k: v.strip() for k, _, v in (line.partition(":") for line in stdout.splitlines())}


def test_default_capabilities_and_no_new_privs(spec: dict[str, Any],
                                               shared_rootfs: Path) -> None:
    status = _status(run(shell(spec, STATUS), shared_rootfs).stdout)
    default = f"{mask_of(DEFAULT_CAPS):016x}"
    assert status["CapBnd"] == status["CapPrm"] == status["CapEff"] == default
    assert status["CapInh"] == status["CapAmb"] == "0" * 16
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "0"
    assert status["Uid"].split() == ["0"] * 4


def test_chown_needs_cap_chown(spec: dict[str, Any], shared_rootfs: Path) -> None:
    script = "touch /dev/shm/f && chown 1000 /dev/shm/f"
    result = run(shell(spec, script), shared_rootfs)
    assert result.stderr == "chown: /dev/shm/f: Operation not permitted\n"
    for caps in spec["process"]["capabilities"].values():
        caps.append("CAP_CHOWN")
    assert run(shell(spec, script), shared_rootfs).exit_code == 0


def test_non_root_user_with_additional_groups(spec: dict[str, Any],
                                              shared_rootfs: Path) -> None:
    spec["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [5, 100]}
    result = run(shell(spec, f"id; echo $HOME; {STATUS}"), shared_rootfs)
    ident, home, *rest = result.stdout.splitlines()
    assert ident == "uid=1000(user) gid=1000(user) groups=5(tty),100(users)"
    assert home == "/home/user"
    status = _status("\n".join(rest))
    assert status["Groups"] == "5 100"
    assert status["CapEff"] == status["CapPrm"] == "0" * 16  # no inheritable: nothing survives


def test_ambient_capabilities_survive_a_non_root_user(spec: dict[str, Any],
                                                      shared_rootfs: Path) -> None:
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    spec["process"]["user"] = {"uid": 1000, "gid": 1000}
    spec["process"]["capabilities"] = {k: caps for k in
                                       ("bounding", "effective", "permitted", "inheritable",
                                        "ambient")}
    status = _status(run(shell(spec, STATUS), shared_rootfs).stdout)
    expected = f"{mask_of(caps):016x}"
    assert status["CapAmb"] == status["CapEff"] == status["CapBnd"] == expected


def test_absent_capabilities_object_keeps_roots_capabilities(
        spec: dict[str, Any], shared_rootfs: Path) -> None:
    del spec["process"]["capabilities"]
    status = _status(run(shell(spec, STATUS), shared_rootfs).stdout)
    assert status["CapBnd"] == Path("/proc/self/status").read_text().split("CapBnd:")[1].split()[0]


@pytest.mark.parametrize("no_new_privileges", [True, False])
def test_seccomp_profile_denies_mkdir(spec: dict[str, Any], shared_rootfs: Path,
                                      no_new_privileges: bool) -> None:
    spec["process"]["noNewPrivileges"] = no_new_privileges
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat", "no_such_syscall"],
                      "action": "SCMP_ACT_ERRNO"}],
    }
    result = run(shell(spec, f"mkdir /tmp/x; {STATUS}"), shared_rootfs)
    assert result.stderr == "mkdir: can't create directory '/tmp/x': Operation not permitted\n"
    status = _status(result.stdout)
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == ("1" if no_new_privileges else "0")


def test_seccomp_errno_ret_and_argument_conditions(spec: dict[str, Any],
                                                   shared_rootfs: Path) -> None:
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                      "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}],
    }
    result = run(shell(spec, "kill -0 1; echo $?; kill -CONT 1; echo $?"), shared_rootfs)
    assert result.stderr == "sh: can't kill pid 1: Permission denied\n"
    assert result.stdout.split() == ["1", "0"]


def test_rlimits(spec: dict[str, Any], shared_rootfs: Path) -> None:
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
                                  {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    result = run(shell(spec, "ulimit -Sn; ulimit -Hn; ulimit -c"), shared_rootfs)
    assert result.stdout.split() == ["100", "200", "0"]


def test_oom_score_adj_and_umask(spec: dict[str, Any], shared_rootfs: Path) -> None:
    spec["process"]["oomScoreAdj"] = 500
    spec["process"]["user"]["umask"] = 0o027
    result = run(shell(spec, "cat /proc/self/oom_score_adj; umask"), shared_rootfs)
    assert result.stdout.split() == ["500", "0027"]
