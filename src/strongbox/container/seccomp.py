"""Seccomp translates the OCI ``linux.seccomp`` object into a libseccomp filter.

Translation (:func:`translate`) is pure and runs in the caller before
anything is forked, so every spec error (an unknown action, flag or
operator) fails ``create``; the container process only builds and loads
the filter (:func:`load`). Rules follow runc's reading of the spec:

* a rule whose action equals the default action is dropped (libseccomp
  refuses it and it changes nothing),
* a syscall name this libseccomp does not know is skipped, so profiles
  written for newer kernels still load,
* argument conditions on distinct arguments are ANDed in one rule; several
  conditions on the same argument cannot be expressed in one libseccomp
  rule, so each becomes a rule of its own (ORed),
* SCMP_ACT_NOTIFY needs a listener process strongbox does not have.

When should it be loaded? With ``noNewPrivileges`` the filter is the very
last step before execve (so it only has to allow execve); without it,
loading needs CAP_SYS_ADMIN, so it happens before capabilities are dropped.
"""

from __future__ import annotations

import errno as _errno

from strongbox.container import _libseccomp as scmp
from strongbox.container.errors import ContainerError

#: OCI architecture names -> libseccomp names (x86_64 guests run these three ABIs).
ARCHES = {"SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X32": "x32"}

#: OCI comparison operators -> enum scmp_compare.
OPERATORS = {
    "SCMP_CMP_NE": scmp.CMP_NE, "SCMP_CMP_LT": scmp.CMP_LT, "SCMP_CMP_LE": scmp.CMP_LE,
    "SCMP_CMP_EQ": scmp.CMP_EQ, "SCMP_CMP_GE": scmp.CMP_GE, "SCMP_CMP_GT": scmp.CMP_GT,
    "SCMP_CMP_MASKED_EQ": scmp.CMP_MASKED_EQ,
}

_FIXED_ACTIONS = {
    "SCMP_ACT_KILL": scmp.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": scmp.ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": scmp.ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": scmp.ACT_TRAP,
    "SCMP_ACT_ALLOW": scmp.ACT_ALLOW,
    "SCMP_ACT_LOG": scmp.ACT_LOG,
}

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Arg = tuple[int, int, int, int]


def action(name: str, errno_ret: int | None = None) -> int:
    """The libseccomp action for an OCI action name (``errnoRet`` defaults to EPERM)."""
    if name in _FIXED_ACTIONS:
        return _FIXED_ACTIONS[name]
    ret = _errno.EPERM if errno_ret is None else errno_ret
    if name == "SCMP_ACT_ERRNO":
        return scmp.act_errno(ret)
    if name == "SCMP_ACT_TRACE":
        return scmp.act_trace(ret)
    if name == "SCMP_ACT_NOTIFY":
        raise ContainerError("seccomp", "seccomp action SCMP_ACT_NOTIFY is not supported")
    raise ContainerError("seccomp", f"unknown seccomp action {name!r}")


class Rule:
    """One libseccomp rule: ``action`` when ``syscall`` is called with ``args`` matching."""

    __slots__ = ("action", "args", "syscall")

    def __init__(self, action: int, syscall: str, args: tuple[Arg, ...] = ()) -> None:
        self.action = action
        self.syscall = syscall
        self.args = args

    def __repr__(self) -> str:
        return f"Rule({self.action:#x}, {self.syscall!r}, {self.args!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and (self.action, self.syscall, self.args) == (
            other.action, other.syscall, other.args)

    __hash__ = None  # type: ignore[assignment]


class Profile:
    """A translated seccomp profile, ready to be built into a filter."""

    __slots__ = ("arches", "attrs", "default_action", "rules")

    def __init__(self, default_action: int, arches: list[str], attrs: list[int],
                 rules: list[Rule]) -> None:
        self.default_action = default_action
        self.arches = arches
        self.attrs = attrs
        self.rules = rules


def _args(spec_args: list[dict[str, Any]]) -> list[tuple[Arg, ...]]:
    """Argument conditions as rule groups: one group, or one per condition if an index repeats."""
    conditions: list[Arg] = []
    for arg in spec_args:
        op = OPERATORS.get(str(arg.get("op")))
        if op is None:
            raise ContainerError("seccomp", f"unknown seccomp operator {arg.get('op')!r}")
        index = int(arg.get("index", 0))
        if not 0 <= index <= 5:
            raise ContainerError("seccomp", f"seccomp argument index {index} out of range 0-5")
        conditions.append((index, op, int(arg.get("value", 0)), int(arg.get("valueTwo", 0))))
    indexes = [c[0] for c in conditions]
    if len(set(indexes)) != len(indexes):
        return [(c,) for c in conditions]
    return [tuple(conditions)]


def translate(spec: dict[str, Any]) -> Profile:
    """Translate ``linux.seccomp`` into a :class:`Profile` (no filter is built)."""
    default_errno = spec.get("defaultErrnoRet")
    default = action(str(spec.get("defaultAction", "SCMP_ACT_ALLOW")),
                     default_errno if isinstance(default_errno, int) else None)
    arches = []
    for name in spec.get("architectures") or []:
        if name in ARCHES:
            arches.append(ARCHES[name])
        elif not str(name).startswith("SCMP_ARCH_"):
            raise ContainerError("seccomp", f"unknown seccomp architecture {name!r}")
        # Other SCMP_ARCH_* values cannot run on an x86_64 kernel: nothing to filter.
    attrs = []
    for flag in spec.get("flags") or []:
        if flag not in scmp.FLAG_ATTRS:
            raise ContainerError("seccomp", f"seccomp flag {flag} is not supported")
        attrs.append(scmp.FLAG_ATTRS[flag])
    if spec.get("listenerPath"):
        raise ContainerError("seccomp", "seccomp listenerPath (SCMP_ACT_NOTIFY) is not supported")
    rules: list[Rule] = []
    for entry in spec.get("syscalls") or []:
        errno_ret = entry.get("errnoRet")
        act = action(str(entry.get("action")), errno_ret)
        if act == default:
            continue
        groups = _args(entry.get("args") or [])
        for name in entry.get("names") or []:
            rules.extend(Rule(act, name, group) for group in groups)
    return Profile(default, arches, attrs, rules)


def preload() -> None:
    """dlopen libseccomp in the caller: after pivot_root the container's own /usr/lib is visible,
    and it need not have the library.
    """
    try:
        scmp.library()
    except OSError as exc:
        raise ContainerError("seccomp", f"seccomp profile given but libseccomp is missing: {exc}",
                             exc.errno) from exc


def load(profile: Profile, no_new_privileges: bool) -> list[str]:
    """Build the filter and load it into this process; returns the syscall names skipped.

    Without ``noNewPrivileges`` libseccomp is told not to set it (ATTR_CTL_NNP=0),
    which the kernel allows only while the process still has CAP_SYS_ADMIN.
    """
    try:
        filt = scmp.Filter(profile.default_action)
        try:
            for arch in profile.arches:
                filt.add_arch(arch)
            for attr in profile.attrs:
                filt.set_attr(attr, 1)
            filt.set_attr(scmp.ATTR_CTL_NNP, 1 if no_new_privileges else 0)
            skipped = [rule.syscall for rule in profile.rules
                       if not filt.add_rule(rule.action, rule.syscall, rule.args)]
            filt.load()
        finally:
            filt.release()
    except OSError as exc:
        raise ContainerError("seccomp", str(exc.strerror or exc), exc.errno) from exc
    return skipped
