"""Prepared: what strongbox built or started ahead of containers, and whether it is current.

The guest kernel and initrd are built from Debian packages and strongbox's own
guest code, cached by a hash of those inputs: one whose inputs changed (a
package upgrade, a new strongbox) still boots but is stale until ``strongbox
guest build``. The VM template (``[factory] enable_template``) is fresh while
its inputs match; a stale or absent one means cold boots. The warm pool
(``vm_cache_number``) is a process that may or may not be running.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from strongbox.config import Config
from strongbox.errors import StrongboxError
from strongbox.guest.assets import AssetStore
from strongbox.hypervisor.base import OK, WARNING, Finding


def guest_build(state_dir: Path) -> list[Finding]:
    """The built kernel and initrd against the inputs they would be built from now."""
    from strongbox.guest import debs, initrd, kernel

    current = AssetStore(state_dir).current()
    found = []
    for kind in ("kernel", "initrd"):
        asset = current.get(kind)
        name = f"guest {kind}"
        if asset is None or not asset.path.is_file():
            found.append(Finding(name, WARNING, f"not built in {state_dir} (`strongbox guest "
                                 "build`, or set it in [hypervisor.qemu])"))
            continue
        try:
            now = kernel.inputs_hash() if kind == "kernel" else \
                initrd.inputs_hash(debs.resolve(debs.package_list()))
        except (StrongboxError, OSError) as exc:
            found.append(Finding(name, WARNING, f"{asset.path}: freshness unknown ({exc})"))
            continue
        if now != asset.inputs_hash:
            found.append(Finding(name, WARNING, f"{asset.path}: stale, its inputs changed "
                                 "(`strongbox guest build` makes it current)"))
        else:
            found.append(Finding(name, OK, f"{asset.path}: fresh"))
    return found


def template_status(config: Config, state_dir: Path, root: Path) -> dict[str, Any]:
    """The template's status (:meth:`Factory.status`): present, fresh, why stale."""
    from strongbox.sandbox.factory import Factory

    return Factory(config, state_dir, root).status()


def pool_status(config: Config) -> dict[str, Any] | None:
    """The warm pool's status, or None when none is configured or none answers."""
    if not config.factory.vm_cache_number:
        return None
    from strongbox.sandbox.pool.server import query_status

    return asyncio.run(query_status(config))


def template(config: Config, state_dir: Path, root: Path) -> Finding:
    if not config.factory.enable_template:
        return Finding("template", OK, "off ([factory] enable_template = false): cold boots")
    status = template_status(config, state_dir, root)
    if not status["present"]:
        return Finding("template", WARNING, f"none at {status['path']}: starts boot cold until "
                       "`strongbox factory init`")
    if not status["fresh"]:
        return Finding("template", WARNING, f"{status['path']}: stale ("
                       f"{', '.join(status['stale_because'])} changed): starts boot cold")
    return Finding("template", OK, f"{status['path']}: fresh")


def pool(config: Config) -> Finding:
    size = config.factory.vm_cache_number
    if not size:
        return Finding("pool", OK, "off ([factory] vm_cache_number = 0)")
    status = pool_status(config)
    if status is None:
        return Finding("pool", WARNING, f"vm_cache_number = {size} but no pool answers "
                       "(`strongbox factory serve` runs it): starts do without")
    return Finding("pool", OK, f"pid {status['pid']}: {status['free']} free of "
                   f"{status['size']}, {status['warming']} warming")
