"""The spec is a container's config.json, read from its bundle, validated and normalized.

A bundle is a directory holding ``config.json`` and, usually, the container's root
filesystem (runtime-spec bundle.md). ``load_bundle()`` reads one on the host;
``validate()`` checks an already decoded document (config.md, config-linux.md) and
returns a normalized deep copy in which every optional field that strongbox reads has
its default filled in, so consumers index the dict directly instead of scattering
``.get()`` calls with defaults that could disagree.

The spec stays a plain dict in JSON shape on purpose: it crosses to the guest agent as
JSON, and the guest (running under emulation) should not pay for building and
importing a model of it. Host code reads the few values it needs with the typed
accessors at the end of this module.

Compatibility with what runc accepts:

* unknown keys are kept and ignored, at the top level and inside objects, because
  later spec versions add fields and runc ignores what it does not know; a known key
  whose value has the wrong type is an error;
* JSON ``null`` for a known field reads as absent, as Go's encoding/json (runc's
  decoder) does;
* integers must be JSON integers in the Go field's range: ``true`` and ``1.0`` are
  refused where a number is expected.

Every problem is a one-line :class:`SpecError` naming the JSON path of the field;
only the first one found is reported.

The rules live in private modules, one per spec section, which import ``SpecError``
from :mod:`.errors` (never this module: no import cycle); ``validate()`` imports them
on first use, so guest code that only reads an already validated spec never loads them.
"""

from __future__ import annotations

import os

from strongbox.errors import ConfigError

from .cpuset import count_cpu_list
from .errors import SpecError

TYPE_CHECKING = False  # `typing` is too slow to import in the guest; checkers treat this as True
if TYPE_CHECKING:
    from typing import Any

MAX_CONFIG_BYTES = 16 << 20
"""Refuse larger config.json files: even big seccomp profiles are well under 1 MiB."""

DEFAULT_CPU_PERIOD = 100_000
"""CFS period in microseconds when linux.resources.cpu.period is absent (the kernel's)."""


def load_bundle(bundle: str) -> tuple[dict[str, Any], str]:
    """Read, validate and normalize ``<bundle>/config.json``; return it with the rootfs path.

    ``root.path`` is resolved against the bundle when relative (config.md "Root"),
    and must name an existing directory: failing here gives a precise message
    instead of a mount error from inside the guest. As in runc, the bundle's own
    path may pass symlinks (runc resolves it by changing into it), but the rootfs
    may not be, or pass through, one: a rootfs that is a symlink to ``/`` would
    give the guest the host's root. (The share is opened with no symlink
    followed too, :mod:`strongbox.hostpath`, so a swap after this check fails.)
    The rootfs path is returned absolute and real; the spec keeps what the file
    says. File-level problems are ``ConfigError`` naming the file; field-level
    ones are ``SpecError``.
    """
    bundle = os.path.abspath(bundle)
    if not os.path.isdir(bundle):
        reason = "is not a directory" if os.path.exists(bundle) else "does not exist"
        raise ConfigError(f"bundle {bundle}: {reason}")
    spec = validate(_read_json(os.path.join(bundle, "config.json")))
    root_path: str = spec["root"]["path"]
    rootfs = os.path.normpath(os.path.join(os.path.realpath(bundle), root_path))
    if os.path.realpath(rootfs) != rootfs:
        raise SpecError("root.path", "a real directory (runc: invalid rootfs: not an "
                        "absolute path, or a symlink)", f"{root_path!r} ({rootfs} -> "
                        f"{os.path.realpath(rootfs)})")
    if not os.path.isdir(rootfs):
        reason = "is not a directory" if os.path.exists(rootfs) else "does not exist"
        raise SpecError("root.path", "an existing directory", f"{root_path!r} ({rootfs} {reason})")
    return spec, rootfs


def _read_json(path: str) -> object:
    """Decode config.json with the one reader of untrusted JSON (:mod:`.jsonfile`).

    Every way the file can fail (missing, a directory, too big, not UTF-8, not
    JSON, too deep, a lone surrogate) is a one-line ConfigError naming it.
    """
    from .jsonfile import read_json_file  # host-side only: the guest gets decoded specs

    return read_json_file(path, max_bytes=MAX_CONFIG_BYTES,
                          missing="a bundle must hold config.json")


def validate(spec: object, *, require_process: bool = True) -> dict[str, Any]:
    """Check a decoded config.json and return a normalized deep copy of it.

    ``require_process`` is True for ``create`` (config.md: process is REQUIRED when
    start is called) and False where only the rest matters, such as a pod sandbox
    whose processes come later. The input is never modified. Defaults filled in:
    process.terminal/noNewPrivileges False, cwd "/", env [], rlimits [], user
    {uid 0, gid 0, additionalGids []}; root.readonly False; hostname "";
    mounts [] with each mount's source "" and options [] (and type "bind" for a bind
    mount that omits it); annotations {}; linux {} with namespaces, maskedPaths,
    readonlyPaths [] and sysctl, resources {}. Absent capabilities stay absent:
    "not specified" is not the same as "no capabilities".
    """
    from ._check import json_copy
    from ._config import check_config
    from .jsonfile import first_problem

    # The rules and the encoders downstream recurse, and a lone surrogate or an
    # infinity cannot be encoded for the guest: refuse them here, for every source
    # (files went through jsonfile already; containerd's Exec and Update did not).
    problem = first_problem(spec)
    if problem is not None:
        raise SpecError(*problem)
    return check_config(json_copy(spec), require_process=require_process)


def validate_process(process: object) -> dict[str, Any]:
    """Check one OCI process object (config.md "Process"): what ``exec`` runs.

    For ``strongbox exec`` (its flags or ``--process`` file) and containerd's
    Exec alike; returns the normalized copy, as :func:`validate` fills it in.
    """
    probe = validate({"ociVersion": "1.0.2", "root": {"path": "/"}, "process": process})
    checked: dict[str, Any] = probe["process"]
    return checked


def validate_resources(resources: object) -> dict[str, Any]:
    """Check an OCI ``linux.resources`` object (config-linux.md): what ``update`` applies.

    Returns a plain copy of what was given, not a normalized one: an update
    changes only the limits it names.
    """
    from ._check import json_copy

    validate({"ociVersion": "1.0.2", "root": {"path": "/"}, "linux": {"resources": resources}},
             require_process=False)
    copied = json_copy(resources)
    if not isinstance(copied, dict):  # validate() refuses it first; for the type checker
        raise SpecError("linux.resources", "an object", type(copied).__name__)
    return copied


# Accessors: typed reads for host code. They accept any validated spec, normalized or
# not, and return None where the spec sets nothing.


def _resource(spec: dict[str, Any], group: str, key: str) -> object:
    """linux.resources.<group>.<key>, or None when any level is absent."""
    node: object = spec.get("linux")
    for name in ("resources", group, key):
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node


def memory_limit(spec: dict[str, Any]) -> int | None:
    """The container's memory limit in bytes (config-linux.md "Memory"), or None.

    Zero and -1 both mean "no limit" to runc, so they map to None.
    """
    limit = _resource(spec, "memory", "limit")
    return limit if type(limit) is int and limit > 0 else None


def cpu_quota_vcpus(spec: dict[str, Any]) -> int | None:
    """How many CPUs the CFS quota amounts to, rounded up (config-linux.md "CPU"), or None.

    quota/period is the number of CPUs' worth of time the container may use per
    period; a quota of 150000 per 100000 needs two CPUs to be reachable.
    """
    quota = _resource(spec, "cpu", "quota")
    period = _resource(spec, "cpu", "period")
    if period is None:
        period = DEFAULT_CPU_PERIOD
    if type(quota) is not int or type(period) is not int or quota <= 0 or period <= 0:
        return None
    return -(-quota // period)


def cpuset_count(spec: dict[str, Any]) -> int | None:
    """How many distinct CPUs linux.resources.cpu.cpus names, or None when it is unset.

    An empty string means unset, as in runc. Raises SpecError at
    "linux.resources.cpu.cpus" for bad syntax (validate() already refuses it).
    """
    cpus = _resource(spec, "cpu", "cpus")
    if not isinstance(cpus, str) or not cpus:
        return None
    return count_cpu_list(cpus, "linux.resources.cpu.cpus")


def namespace(spec: dict[str, Any], type: str) -> dict[str, Any] | None:
    """The linux.namespaces entry of the given type (config-linux.md "Namespaces"), or None.

    None means the container shares that namespace with the runtime; inside the
    guest that is the VM's, never the host's.
    """
    linux = spec.get("linux")
    entries = linux.get("namespaces") if isinstance(linux, dict) else None
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and entry.get("type") == type:
            return entry
    return None
