"""The CLI's part of ``strongbox gc``: where to look, and container records a crash left.

A root holds the CLI's container records (``containers/``, :mod:`.state`) and
the VMs' run directories (``vms/``); engines whose ``--root`` is runc's get a
root of their own under ``<root>/clients/`` (:mod:`.paths`), so every one of
those is looked at too. A record is a crash's leftover when its monitor is
gone without having recorded the end (a monitor that saw its container stop
writes ``stopped``, and such a record waits for its engine's ``delete``). A
record under a command's lock (a create under way) is busy, never a leftover.
The VMs' side is :mod:`strongbox.sandbox.gc`'s.
"""

from __future__ import annotations

from pathlib import Path

from strongbox.errors import StrongboxError
from strongbox.runtime import state as st
from strongbox.runtime.paths import roots_under
from strongbox.sandbox import gc
from strongbox.sandbox.gc import Leftover
from strongbox.sandbox.rundir import run_dirs
from strongbox.status import STOPPED


def _dead_record(store: st.StateStore, container_id: str) -> st.ContainerState | None:
    try:
        record = store.load(container_id)
    except StrongboxError:
        return None  # unreadable: `delete --force` is for that, knowing the id
    if record.monitor_alive or record.status == STOPPED or not record.monitor_pid:
        return None
    return record


def dead_records(root: Path) -> list[Leftover]:
    """Records under ``root`` whose monitor died without recording the end."""
    store = st.StateStore(root)
    found = []
    try:
        ids = store.ids()
    except StrongboxError:
        return []
    for container_id in ids:
        record = _dead_record(store, container_id)
        if record is not None:
            found.append(Leftover("container", container_id, root, (
                f"container record {store.dir(container_id)} ({record.status}, monitor pid "
                f"{record.monitor_pid} gone)",)))
    return found


def remove_record(leftover: Leftover) -> bool:
    """Remove the record, under its lock, if its monitor is still dead (else it stays)."""
    assert leftover.root is not None
    store = st.StateStore(leftover.root)
    try:
        with store.lock(leftover.name, timeout=0.1):
            if _dead_record(store, leftover.name) is None:
                return False
            store.remove(leftover.name)
    except StrongboxError:
        return False  # busy (a command holds it) or gone already
    return not store.exists(leftover.name)


def find(root: Path) -> list[Leftover]:
    """Everything dead sandboxes left under ``root`` and its client roots, and the idle
    jail cgroups of VMs not alive in any of them; nothing changed."""
    found: list[Leftover] = []
    live: set[str] = set()
    for each in roots_under(root):
        dead = gc.dead_vms(each)
        found += [*dead_records(each), *dead]
        live |= {p.name for p in run_dirs(each)} - {d.name for d in dead}
    return found + gc.orphan_qemus() + gc.idle_jail_cgroups(
        live | {d.name for d in found if d.kind == "vm"})


def remove(leftover: Leftover) -> bool:
    """Remove one leftover :func:`find` listed; False if it stays (alive again, or busy)."""
    return remove_record(leftover) if leftover.kind == "container" else gc.remove(leftover)
