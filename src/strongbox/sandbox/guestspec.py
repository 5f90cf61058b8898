"""Guestspec turns a caller's OCI spec into the spec the guest can honour.

Paths in the spec name *host* objects. The ones the guest can use are
rewritten by the sandbox (mount sources become 9p paths); namespace paths
cannot be: a host network namespace is where QEMU runs (its interfaces become
the guest's NICs, :mod:`.network.slots`), and every container uses the VM's
own network namespace, where those NICs are (a pod's containers share it, so
localhost between them works). Joining another container's pid, ipc, uts or mount namespace
would cross VMs, which is exactly what strongbox prevents: refused clearly.

Hooks: only ``startContainer`` reaches the guest, whose container init runs
it (``strongbox.container.hooks``), with the bundle path for its state; the
other kinds run on the host (:mod:`.hooks`) and are dropped here.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from strongbox.errors import SandboxError

log = logging.getLogger("strongbox.sandbox")


#: Where the guest spec carries the state's host-side fields (as ``container/hooks.py``
#: reads them; guest code cannot be imported here).
STATE_KEY = "strongbox"


def guest_spec(spec: dict[str, Any], join: dict[str, str] | None = None, *, bundle: str = ""
               ) -> tuple[dict[str, Any], str | None]:
    """(spec for the agent, host network namespace path for QEMU or None).

    ``join`` maps namespace types to guest paths for a pod member: a
    container that names its pod sandbox's ipc/uts/pid namespace joins that
    container's namespace *in the guest* instead. ``bundle`` is the bundle
    directory the startContainer hooks' state names.
    """
    out = copy.deepcopy(spec)
    start_hooks = (out.pop("hooks", None) or {}).get("startContainer")
    out.pop(STATE_KEY, None)
    if start_hooks:
        out["hooks"] = {"startContainer": start_hooks}
        out[STATE_KEY] = {"bundle": bundle}
    linux = out.setdefault("linux", {})
    netns: str | None = None
    kept = []
    for index, ns in enumerate(linux.get("namespaces") or []):
        path = ns.get("path")
        if ns.get("type") == "network":  # the guest's NICs are in the VM's own namespace
            netns = path or None
        elif not path:
            kept.append(ns)
        elif join and ns.get("type") in join:
            kept.append({"type": ns["type"], "path": join[ns["type"]]})
        else:
            raise SandboxError(
                f"linux.namespaces[{index}]: joining the {ns.get('type')} namespace at {path} "
                "is not supported: every strongbox container has its own VM"
            )
    if not any(ns.get("type") == "network" for ns in linux.get("namespaces") or []):
        log.warning("the spec has no network namespace (the host's network): a VM cannot "
                    "share the host's network stack; the sandbox gets a namespace of its own")
    linux["namespaces"] = kept
    linux.pop("cgroupsPath", None)  # the container's cgroup lives inside its VM
    return out, netns
