"""Translation of linux.seccomp into libseccomp rules, without loading anything."""

from __future__ import annotations

import pytest

from strongbox.container import _libseccomp as scmp
from strongbox.container.errors import ContainerError
from strongbox.container.seccomp import Rule, action, translate


@pytest.mark.parametrize(("name", "expected"), [
    ("SCMP_ACT_KILL", 0x00000000),
    ("SCMP_ACT_KILL_THREAD", 0x00000000),
    ("SCMP_ACT_KILL_PROCESS", 0x80000000),
    ("SCMP_ACT_TRAP", 0x00030000),
    ("SCMP_ACT_ALLOW", 0x7FFF0000),
    ("SCMP_ACT_LOG", 0x7FFC0000),
    ("SCMP_ACT_ERRNO", 0x00050001),  # EPERM
    ("SCMP_ACT_TRACE", 0x7FF00001),
])
def test_actions(name: str, expected: int) -> None:
    assert action(name) == expected


def test_errno_ret() -> None:
    assert action("SCMP_ACT_ERRNO", 38) == scmp.act_errno(38)
    assert action("SCMP_ACT_TRACE", 7) == scmp.act_trace(7)


def test_notify_and_unknown_actions_are_errors() -> None:
    with pytest.raises(ContainerError, match="SCMP_ACT_NOTIFY is not supported"):
        action("SCMP_ACT_NOTIFY")
    with pytest.raises(ContainerError, match="unknown seccomp action 'SCMP_ACT_DANCE'"):
        action("SCMP_ACT_DANCE")


def test_profile_translation() -> None:
    profile = translate({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                          "SCMP_ARCH_AARCH64"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},  # = default
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 0xFF, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]},
        ],
    })
    assert profile.default_action == scmp.act_errno(38)
    assert profile.arches == ["x86_64", "x86", "x32"]
    assert profile.attrs == [scmp.ATTR_CTL_LOG]
    allow = scmp.ACT_ALLOW
    assert profile.rules == [
        Rule(allow, "read"), Rule(allow, "write"),
        Rule(allow, "personality", ((0, scmp.CMP_EQ, 0, 0), (1, scmp.CMP_MASKED_EQ, 0xFF, 8))),
    ]


def test_conditions_on_the_same_argument_become_separate_rules() -> None:
    profile = translate({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                  {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]})
    deny = scmp.act_errno(1)
    assert profile.rules == [Rule(deny, "clone", ((0, scmp.CMP_EQ, 1, 0),)),
                             Rule(deny, "clone", ((0, scmp.CMP_EQ, 2, 0),))]


@pytest.mark.parametrize(("spec", "message"), [
    ({"flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}, "flag .* is not supported"),
    ({"architectures": ["ppc"]}, "unknown seccomp architecture 'ppc'"),
    ({"listenerPath": "/run/x.sock"}, "listenerPath"),
    ({"syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]},
     "unknown seccomp operator 'SCMP_CMP_LIKE'"),
    ({"syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "index 6 out of range"),
])
def test_spec_errors(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ContainerError, match=message) as info:
        translate({"defaultAction": "SCMP_ACT_ALLOW", **spec})
    assert info.value.stage == "seccomp"
