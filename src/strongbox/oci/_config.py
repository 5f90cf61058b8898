"""The config rules check the top level of config.json: runtime-spec config.md.

Version, root, hostname, mounts, hooks and annotations are checked here; the process
(config.md "Process") and the Linux section (config-linux.md) have modules of their
own. The order of the checks is the order of config.md, so the first error reported
is the first one a reader of the spec would meet.
"""

from __future__ import annotations

from ._check import Node, expect_object, fail
from ._linux import check_id_mappings, check_linux
from ._process import check_process
from .names import BIND_OPTIONS, HOOK_KINDS

SUPPORTED_MAJOR = 1
"""The runtime-spec major version strongbox implements (config.md "Specification version")."""

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from typing import Any

HOOK_TIMEOUT: tuple[int, int, str] = (1, (1 << 63) - 1, "a positive number of seconds")


def check_config(document: object, *, require_process: bool) -> dict[str, Any]:
    """Check and normalize a whole config.json document in place; return it."""
    top = expect_object(document, "")
    _check_version(top)
    root = top.object("root", required=True)
    if root is not None:
        _check_root(root)
    process = top.object("process", required=require_process)
    if process is not None:
        check_process(process)
    top.string("hostname", default="")
    top.string("domainname")
    _check_mounts(top)
    _check_hooks(top)
    top.string_map("annotations", default={})
    check_linux(top.object_or("linux", {}))
    return top.value


def _semver_major(version: str) -> int | None:
    """The major number of a SemVer 2.0 version ("1.0.2-dev" -> 1), or None if not one.

    Only the MAJOR.MINOR.PATCH core is checked; pre-release and build suffixes are
    whatever follows, because runc writes "1.0.2-dev" and clients copy it.
    """
    core = version.split("+", 1)[0].split("-", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(part.isascii() and part.isdecimal() for part in parts):
        return None
    return int(parts[0])


def _check_version(top: Node) -> None:
    """config.md "Specification version": ociVersion is REQUIRED and SemVer.

    A different major version may change the meaning of fields we would accept, so it
    is refused rather than guessed at; any 1.x minor is accepted, its new fields being
    unknown keys.
    """
    expected = f"a version string with major {SUPPORTED_MAJOR} like '1.0.2'"
    version = top.string("ociVersion", required=True)
    if version is not None and _semver_major(version) != SUPPORTED_MAJOR:
        fail("ociVersion", expected, version)


def _check_root(root: Node) -> None:
    """config.md "Root": path REQUIRED (relative to the bundle or absolute), readonly."""
    root.string("path", required=True, nonempty=True)
    root.boolean("readonly", default=False)


def _check_mounts(top: Node) -> None:
    """config.md "Mounts": destinations are absolute paths inside the container.

    The type may be omitted (absent, null or "") for bind mounts, where the kernel
    ignores it; it is set to "bind" so consumers can dispatch on it. Any other mount
    without a type is an error, since mount(2) cannot guess the filesystem.
    """
    for mount in top.objects("mounts", default=[]):
        mount.abspath("destination", required=True)
        mount.string("source", default="")
        options = mount.strings("options", default=[]) or []
        if mount.value.get("type") in (None, ""):  # Go clients write "" for "omitted"
            if not any(option in BIND_OPTIONS for option in options):
                fail(mount.at("type"), "a filesystem type (only bind mounts may omit it)")
            mount.value["type"] = "bind"
        mount.string("type", required=True)
        # Idmapped mounts (runtime-spec 1.1): same shape as linux.uidMappings.
        check_id_mappings(mount, "uidMappings")
        check_id_mappings(mount, "gidMappings")


def _check_hooks(top: Node) -> None:
    """config.md "POSIX-platform Hooks": path, args, env and timeout checked here.

    Where each kind runs in a VM, and the failure rules, are in
    :mod:`strongbox.sandbox.hooks` (host side): this only makes a bad hook a
    one-line error at create, before a VM boots.
    """
    hooks = top.object("hooks")
    if hooks is None:
        return
    for kind in HOOK_KINDS:
        for hook in hooks.objects(kind):
            hook.abspath("path", required=True)
            hook.strings("args")
            hook.strings("env")
            hook.integer("timeout", HOOK_TIMEOUT)
