"""The process rules check what the container runs and as whom: runtime-spec config.md "Process".

These values end up in the guest's execve(2), setuid(2), capset(2) and setrlimit(2)
calls. A value the kernel would refuse is caught here, on the host, where the error
can still name the config.json field; inside the guest it would be an errno.
"""

from __future__ import annotations

from ._check import UINT32, UINT64, Node, expect_int, expect_string, fail
from .names import CAPABILITIES, CAPABILITY_SETS, RLIMITS

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from ._check import IntKind

OOM_SCORE_ADJ: IntKind = (-1000, 1000, "an integer in -1000..1000")

_CAP_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def check_process(process: Node) -> None:
    """config.md "Process" and "POSIX process": check and fill in defaults.

    cwd defaults to "/" (REQUIRED by the spec, but runc and most clients treat an
    absent cwd as the root), user to root, and the flags to False.
    """
    process.boolean("terminal", default=False)
    size = process.object("consoleSize")
    if size is not None:
        size.integer("height", UINT32, required=True)
        size.integer("width", UINT32, required=True)
    _check_user(process.object_or("user", {"uid": 0, "gid": 0}))
    _check_args(process)
    _check_env(process)
    process.abspath("cwd", default="/")
    capabilities = process.object("capabilities")
    if capabilities is not None:
        _check_capabilities(capabilities)
    _check_rlimits(process)
    process.boolean("noNewPrivileges", default=False)
    process.integer("oomScoreAdj", OOM_SCORE_ADJ)
    # Accepted so that configs written for runc load; a VM guest has no LSM policy
    # for them (the VM boundary plays that role), so they are not applied.
    process.string("apparmorProfile")
    process.string("selinuxLabel")


def _check_user(user: Node) -> None:
    """config.md "POSIX-platform User": uid and gid REQUIRED, as uint32.

    username is the Windows field; it is accepted and unused on Linux.
    """
    user.integer("uid", UINT32, required=True)
    user.integer("gid", UINT32, required=True)
    user.integer("umask", UINT32)
    path = user.at("additionalGids")
    gids = user.array("additionalGids", default=[], expected="an array of uint32s")
    for index, gid in enumerate(gids or ()):
        expect_int(gid, f"{path}[{index}]", UINT32)
    user.string("username")


def _check_args(process: Node) -> None:
    """config.md "Process": args is REQUIRED on POSIX, and args[0] is the program.

    An empty program name would reach execve(2) as ENOENT with no hint of its origin.
    """
    expected = "a non-empty array of strings"
    args = process.strings("args", required=True, expected=expected)
    if not args:
        fail(process.at("args"), expected, args)
    if args[0] == "":
        fail(process.at("args") + "[0]", "a non-empty program name", "")


def _check_env(process: Node) -> None:
    """config.md "Process": env entries are "KEY=value" (IEEE Std 1003.1-2008 environ).

    An entry without "=" or with an empty name is not a variable at all; exec would
    pass it on and the program would see garbage in its environment.
    """
    path = process.at("env")
    for index, entry in enumerate(process.strings("env", default=[]) or ()):
        name, equals, _ = entry.partition("=")
        if not equals or not name:
            fail(f"{path}[{index}]", "a 'KEY=value' string", entry)


def check_capability(value: object, path: str) -> str:
    """A capability name (config.md "POSIX process" capabilities; capabilities(7)).

    runc warns about unknown names and drops them; strongbox refuses them, because a
    silently dropped capability shows up later as an EPERM nobody can explain.
    """
    name = expect_string(value, path, "a capability name like 'CAP_CHOWN'")
    if not name.startswith("CAP_") or len(name) == 4 or not _CAP_CHARS.issuperset(name):
        fail(path, "a capability name like 'CAP_CHOWN'", name)
    if name not in CAPABILITIES:
        known = f"a capability name known to Linux ({CAPABILITIES[0]}..{CAPABILITIES[-1]})"
        fail(path, known, name)
    return name


def _check_capabilities(capabilities: Node) -> None:
    """Each of the five sets is an optional array of capability names."""
    for kind in CAPABILITY_SETS:
        path = capabilities.at(kind)
        for index, value in enumerate(capabilities.strings(kind) or ()):
            check_capability(value, f"{path}[{index}]")


def _check_rlimits(process: Node) -> None:
    """config.md "POSIX process" rlimits: type, soft and hard REQUIRED, soft <= hard.

    setrlimit(2) fails with EINVAL when soft exceeds hard, and the spec says a
    duplicated type MUST be an error (which entry would win is undefined).
    """
    seen: list[str] = []
    for rlimit in process.objects("rlimits", default=[]):
        kind = rlimit.choice("type", RLIMITS, required=True, expected="a known RLIMIT_* name")
        if kind in seen:
            fail(rlimit.at("type"), "a type not already listed", kind)
        seen.append(str(kind))
        hard = rlimit.integer("hard", UINT64, required=True)
        soft = rlimit.integer("soft", UINT64, required=True)
        if soft is not None and hard is not None and soft > hard:
            fail(rlimit.at("soft"), f"at most hard ({hard})", soft)

