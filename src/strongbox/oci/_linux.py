"""The Linux rules check how the container is isolated: runtime-spec config-linux.md.

Namespaces, ID mappings, device nodes, sysctls, seccomp, propagation and the masked
and read-only paths are all applied by the agent inside the guest, against the guest
kernel. Resource limits (config-linux.md "Control groups") have their own module.
"""

from __future__ import annotations

from ._check import (
    ABSENT,
    INT64,
    UINT32,
    UINT64,
    Node,
    expect_abspath,
    expect_choice,
    fail,
)
from ._resources import check_resources
from .names import (
    DEVICE_TYPES,
    NAMESPACE_TYPES,
    ROOTFS_PROPAGATIONS,
    SECCOMP_ACTIONS,
    SECCOMP_ARCHES,
    SECCOMP_FLAGS,
    SECCOMP_MAX_ARG_INDEX,
    SECCOMP_OPERATORS,
)

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from ._check import IntKind

ARG_INDEX: IntKind = (0, SECCOMP_MAX_ARG_INDEX, f"an argument index in 0..{SECCOMP_MAX_ARG_INDEX}")


def check_linux(linux: Node) -> None:
    """config-linux.md: check the linux object and fill in its defaults.

    The filled-in defaults (namespaces, maskedPaths, readonlyPaths, sysctl,
    resources) are the ones the agent iterates over unconditionally.
    """
    kinds = _check_namespaces(linux)
    check_id_mappings(linux, "uidMappings")
    check_id_mappings(linux, "gidMappings")
    _check_user_namespace(linux, kinds)
    _check_devices(linux)
    check_resources(linux.object_or("resources", {}))
    linux.string("cgroupsPath")
    linux.string_map("sysctl", default={})
    seccomp = linux.object("seccomp")
    if seccomp is not None:
        _check_seccomp(seccomp)
    linux.choice("rootfsPropagation", ROOTFS_PROPAGATIONS)
    for key in ("maskedPaths", "readonlyPaths"):
        path = linux.at(key)
        for index, entry in enumerate(linux.strings(key, default=[]) or ()):
            expect_abspath(entry, f"{path}[{index}]")
    linux.string("mountLabel")
    # Accepted shapes only: Intel RDT has no meaning inside a VM, and personality(2)
    # is applied, if ever, by the container package, which checks its own fields.
    linux.object("intelRdt")
    linux.object("personality")


def _check_namespaces(linux: Node) -> dict[str, bool]:
    """config-linux.md "Namespaces": a known type, an optional absolute path to join.

    The spec says a type listed twice MUST be an error: which entry wins is undefined.
    Returns each listed type -> whether it is new (no path).
    """
    seen: dict[str, bool] = {}
    for entry in linux.objects("namespaces", default=[]):
        kind = str(entry.choice("type", NAMESPACE_TYPES, required=True))
        if kind in seen:
            fail(entry.at("type"), "a type not already listed", kind)
        seen[kind] = entry.abspath("path") is None
    return seen


def _check_user_namespace(linux: Node, kinds: dict[str, bool]) -> None:
    """config-linux.md "User namespace mappings": a new user namespace needs both, and
    mappings need a user namespace (runc refuses either half alone)."""
    for key in ("uidMappings", "gidMappings"):
        given = bool(linux.value.get(key))
        if kinds.get("user") and not given:
            fail(linux.at(key), "mappings for the new user namespace linux.namespaces lists",
                 linux.value.get(key, ABSENT))
        if given and "user" not in kinds:
            fail(linux.at(key), "no mappings, as linux.namespaces lists no user namespace",
                 linux.value[key])


def check_id_mappings(node: Node, key: str) -> None:
    """config-linux.md "User namespace mappings" (and runtime-spec 1.1 idmapped mounts).

    containerID, hostID and size are REQUIRED uint32s, the fields of /proc/PID/uid_map.
    """
    for mapping in node.objects(key):
        mapping.integer("containerID", UINT32, required=True)
        mapping.integer("hostID", UINT32, required=True)
        mapping.integer("size", UINT32, required=True)


def _check_devices(linux: Node) -> None:
    """config-linux.md "Devices": nodes the runtime creates in the container's /dev.

    major and minor are REQUIRED for b, c and u devices and meaningless for a FIFO;
    fileMode, uid and gid are optional.
    """
    for device in linux.objects("devices"):
        kind = device.choice("type", DEVICE_TYPES, required=True)
        device.abspath("path", required=True)
        device.integer("major", INT64, required=kind != "p")
        device.integer("minor", INT64, required=kind != "p")
        device.integer("fileMode", UINT32)
        device.integer("uid", UINT32)
        device.integer("gid", UINT32)


def _check_seccomp(seccomp: Node) -> None:
    """config-linux.md "Seccomp": the filter the agent compiles with libseccomp.

    Every name is checked against libseccomp's vocabulary here, because inside the
    guest an unknown name would fail the container start with a much vaguer error.
    """
    seccomp.choice("defaultAction", SECCOMP_ACTIONS, required=True)
    seccomp.integer("defaultErrnoRet", UINT32)
    _check_names(seccomp, "architectures", SECCOMP_ARCHES, "a known SCMP_ARCH_* architecture")
    _check_names(seccomp, "flags", SECCOMP_FLAGS, None)
    seccomp.string("listenerPath")
    seccomp.string("listenerMetadata")
    for rule in seccomp.objects("syscalls"):
        expected = "a non-empty array of strings"
        names = rule.strings("names", required=True, expected=expected)
        if not names:
            fail(rule.at("names"), expected, names)
        rule.choice("action", SECCOMP_ACTIONS, required=True)
        rule.integer("errnoRet", UINT32)
        for arg in rule.objects("args"):
            arg.integer("index", ARG_INDEX, required=True)
            arg.integer("value", UINT64, required=True)
            arg.integer("valueTwo", UINT64)
            arg.choice("op", SECCOMP_OPERATORS, required=True)


def _check_names(node: Node, key: str, choices: tuple[str, ...], expected: str | None) -> None:
    """An optional array whose items each come from ``choices``."""
    path = node.at(key)
    for index, value in enumerate(node.array(key, expected="an array of strings") or ()):
        expect_choice(value, f"{path}[{index}]", choices, expected)
