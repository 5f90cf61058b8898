"""Slots are one VM's NICs: taps made before QEMU starts, bound to the engine's interfaces later.

A ``microvm`` has no hotplug, so the NICs a VM will ever have must be on
QEMU's command line. Every VM therefore gets ``[network] nic_slots``
virtio-net NICs, each on a tap of its own in the sandbox's network namespace
and with a fixed placeholder MAC, its *slot MAC* (the guest's permanent
address of that NIC, how the agent finds it again). Whenever the sandbox looks
(:meth:`SandboxNetwork.sync`: after the VM booted, and again before each
container starts, because Docker's hook adds its veth after ``create``) each
new interface of the namespace takes a free slot: its tap is spliced to the
veth (:mod:`.tcfilter`) and the agent gives the slot's NIC the veth's name,
MAC, MTU, addresses and routes; unbound NICs are hidden from containers in a
namespace of the agent's. The same shape for every VM is what lets a template
carry the NICs: each clone brings its own taps on its command line and is
told its interfaces after waking, and slot MACs never reach the wire (a bound
NIC takes its veth's MAC, an unbound one is hidden). A VM that takes hot-plugged
NICs (q35) gets a slot more for an interface beyond them (:meth:`add_slot`); once
its interface is gone the slot leaves (:meth:`leave`, :meth:`left`: out of every
request while its NIC is unplugged, reusable after).

The namespace is opened (the spec's path) or created here (a spec without a
path) before QEMU exists, held by an fd for the VM's life, and QEMU joins it
through :meth:`SandboxNetwork.enter`. What outlives a kill -9 of everyone is
only our filter on an engine's veth in a namespace the engine keeps, so the
run directory records the namespace path and the splices (``network.json``)
for :func:`reap`; the taps die with the last fd.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongbox.atomicfile import atomic_write
from strongbox.config import NetworkConfig
from strongbox.container._syscalls import CLONE_NEWNET, setns
from strongbox.errors import SandboxError
from strongbox.hypervisor.base import NicSpec
from strongbox.sandbox.network import taps as tapdev
from strongbox.sandbox.network.nsthread import new_netns, open_netns, run_in

if TYPE_CHECKING:  # pyroute2 (under these) is imported on a thread while QEMU boots
    from strongbox.sandbox.network.egress import Egress
    from strongbox.sandbox.network.interfaces import Interface

log = logging.getLogger("strongbox.sandbox")
#: In the run directory: what :func:`reap` must undo if the owner dies.
RECORD = "network.json"


class NoFreeSlot(SandboxError):
    """An interface needs a NIC and every slot is bound: a VM that takes hot-plugged NICs
    gets another (:meth:`SandboxNetwork.add_slot`), any other refuses the interface."""


def slot_mac(slot: int) -> str:
    """The placeholder MAC of slot ``slot``: locally administered, the same in every VM (a
    template's clones share them), never on the wire."""
    return f"02:73:62:00:00:{slot:02x}"


def slot_count(config: NetworkConfig) -> int:
    """How many NICs every VM of this configuration has (a template's clones must match)."""
    return config.nic_slots if config.internetworking_model == "tcfilter" else 0


def _vhost_fd(config: NetworkConfig) -> int | None:
    """An open /dev/vhost-net when it is allowed and works, else None (QEMU moves frames)."""
    if config.disable_vhost_net:
        return None
    try:
        return os.open("/dev/vhost-net", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None


#: The pyroute2 side of networking (its import alone costs ~0.25 s).
_NETLINK = "strongbox.sandbox.network.tcfilter"


def _preload() -> None:
    """Import the netlink modules on a thread, overlapping QEMU's boot; :func:`_netlink`
    then finds them loaded (or waits on the import lock for the rest)."""
    threading.Thread(target=importlib.import_module, args=(_NETLINK,), name="sb-preload",
                     daemon=True).start()


def _netlink() -> Any:
    return importlib.import_module(_NETLINK)


class SandboxNetwork:
    """The network namespace of one sandbox and its NIC slots (see the module docstring)."""

    def __init__(self, sandbox_id: str, netns_fd: int, spec_path: str | None,
                 record: Path | None) -> None:
        self.sandbox_id, self.netns_fd, self.spec_path = sandbox_id, netns_fd, spec_path
        self.record = record
        self.taps: list[str] = []
        self._fds: list[int] = []  # ours until QEMU has its copies (handed_over)
        self._vhost: list[int | None] = []
        self.bound: list[Interface | None] = []
        self.applied: dict[str, Any] | None = None
        self.cold = 0  # slots on QEMU's command line; any beyond were hot-plugged
        self.leaving: set[int] = set()  # hot slots whose NIC is being unplugged
        self.vacant: set[int] = set()  # hot slots whose NIC (and tap) is gone: reusable
        #: Where the guest may send (network/egress.py), on every slot it binds; None: anywhere.
        self.egress: Egress | None = None

    @classmethod
    def open(cls, config: NetworkConfig, *, sandbox_id: str, netns: str | None,
             run_dir: Path | None) -> SandboxNetwork:
        """The namespace (``netns``, else a new one) with ``config.nic_slots`` taps in it.

        With ``model = "none"`` there are no slots: the VM has ``lo`` only. On
        failure nothing is left.
        """
        fd = open_netns(netns) if netns else new_netns()
        net = cls(sandbox_id, fd, netns, run_dir / RECORD if run_dir is not None else None)
        try:
            if slot_count(config):
                _preload()
                net.taps = [tapdev.tap_name(sandbox_id, i) for i in range(slot_count(config))]
                net._save()  # before the taps exist: a crash from here on is reaped
                net._fds = tapdev.open_taps(net.path, net.taps, vnet_hdr=True)
                net._vhost = [_vhost_fd(config) for _ in net.taps]
                net.bound = [None] * len(net.taps)
                net.cold = len(net.taps)
        except BaseException:
            net.close()
            raise
        return net

    @classmethod
    def adopted(cls, *, sandbox_id: str, netns: str | None, vm_netns_fd: int,
                taps: list[str], run_dir: Path) -> SandboxNetwork:
        """The network of a pooled VM's new owner: the spec's namespace (the keeper then moves
        the VM's taps into it), else the VM's own (``vm_netns_fd``, taken over)."""
        if netns:
            os.close(vm_netns_fd)
            fd = open_netns(netns)
        else:
            fd = vm_netns_fd
        net = cls(sandbox_id, fd, netns, run_dir / RECORD)
        net.taps, net.bound, net.cold = list(taps), [None] * len(taps), len(taps)
        if taps:  # (no preload: a thread importing pyroute2 would slow the hand-over)
            net._save()  # before the taps move: a crash from here on is reaped
        return net

    @property
    def path(self) -> str:
        """A path of the namespace that lives as long as this object (our own fd)."""
        return f"/proc/{os.getpid()}/fd/{self.netns_fd}"

    def nics(self) -> tuple[NicSpec, ...]:
        """What QEMU's command line needs: each slot's tap fd and slot MAC."""
        return tuple(NicSpec(tap_fd=fd, mac=slot_mac(i), vhost_fd=vhost)
                     for i, (fd, vhost) in enumerate(zip(self._fds, self._vhost, strict=True)))

    def enter(self) -> None:
        """In QEMU's process before exec: join the sandbox's namespace."""
        setns(self.netns_fd, CLONE_NEWNET)

    def handed_over(self) -> None:
        """QEMU holds the taps now: close our copies, so its death deletes them."""
        for fd in [*self._fds, *(v for v in self._vhost if v is not None)]:
            os.close(fd)
        self._fds, self._vhost = [], []

    def sync(self) -> dict[str, Any] | None:
        """Bind the namespace's new interfaces to free slots; the agent's request if anything
        changed since :meth:`applied` (the first call always answers: it hides the slots).

        An interface no NIC can stand for (not Ethernet) or one beyond the
        free slots is one SandboxError naming it; a veth whose frames go to
        another sandbox in the same namespace is left to it, with a warning.
        """
        if not self.taps:
            return None
        if not any(self.bound) and not self._foreign_interfaces():
            request = self.hidden()  # nothing to bind: no netlink (pyroute2) on this start
            return None if request == self.applied else request
        tcfilter = _netlink()
        found = {i.name: i for i in tcfilter.list_interfaces(self.path)}
        for slot, old in enumerate(self.bound):
            now = found.get(old.name) if old is not None else None
            if old is not None and (now is None or now.index != old.index):
                # the veth went away (or was replaced): its tap's redirect goes, the slot frees
                tcfilter.teardown(self.path, [(old.name, self.taps[slot])], [])
                self.bound[slot] = None
        for name, iface in found.items():
            mine = next((s for s, b in enumerate(self.bound) if b and b.name == name), None)
            if mine is not None:
                self.bound[mine] = iface  # addresses and routes may have changed
            else:
                self._bind(iface)
        request = {"nics": [{"slot_mac": slot_mac(i), "interface": b.to_agent() if b else None}
                            for i, b in enumerate(self.bound) if self._live(i)]}
        return None if request == self.applied else request

    def _live(self, slot: int) -> bool:
        """Whether the slot's NIC is in the guest to stay (not unplugged, nor on its way)."""
        return slot not in self.leaving and slot not in self.vacant

    def _foreign_interfaces(self) -> bool:
        """Whether the namespace holds an interface besides ``lo`` and strongbox's taps: a
        standard-library look (if_nameindex on a thread in the namespace, ~1 ms) that
        spares the common start with no network, or with a namespace strongbox made,
        the netlink library."""
        names = run_in(self.path, socket.if_nameindex)
        return any(name != "lo" and not name.startswith(tapdev.TAP_PREFIX)
                   for _, name in names)

    def _bind(self, iface: Interface) -> None:
        tcfilter = _netlink()
        if iface.link_type != tcfilter.ARPHRD_ETHER:
            raise SandboxError(f"network interface {iface.name}: link type {iface.link_type} "
                               "is not Ethernet; a virtio-net NIC can stand only for an "
                               "Ethernet interface (a veth, macvlan, ...)")
        free = next((s for s, b in enumerate(self.bound) if b is None and self._live(s)), None)
        if free is None:
            hot = len(self.taps) - self.cold
            raise NoFreeSlot(f"network interface {iface.name}: no free NIC slot (a sandbox "
                             f"has {self.cold}: [network] nic_slots"
                             + (f"; {hot} more hot-plugged)" if hot else ")"))
        try:
            tcfilter.splice(self.path, iface.name, self.taps[free], self.egress)
        except SandboxError as exc:
            if "another sandbox" not in str(exc):
                raise
            log.warning("%s", exc)
            return
        self.bound[free] = iface
        self._save()
        log.debug("sandbox %s: %s (%s) on NIC slot %d", self.sandbox_id, iface.name, iface.mac,
                  free)

    def add_slot(self) -> tuple[int, NicSpec]:
        """One more slot, for a NIC hot-plugged into the running VM (q35): a vacant one again
        or a new one, its tap made in the namespace, recorded first. The caller gives the
        VMM the tap's fd, then closes it."""
        slot = min(self.vacant) if self.vacant else len(self.taps)
        if slot >= tapdev.MAX_SLOTS:
            raise SandboxError(f"a sandbox has at most {tapdev.MAX_SLOTS} NICs")
        if slot == len(self.taps):
            self.taps.append(tapdev.tap_name(self.sandbox_id, slot))
            self.bound.append(None)
            self._save()  # before the tap exists: a crash from here on is reaped
        self.vacant.discard(slot)
        (fd,) = tapdev.open_taps(self.path, [self.taps[slot]], vnet_hdr=True)
        return slot, NicSpec(tap_fd=fd, mac=slot_mac(slot))

    def drop_slot(self, slot: int) -> None:
        """Give up the slot :meth:`add_slot` made (its NIC could not be plugged; the tap goes
        with its last fd)."""
        self.vacant.add(slot)

    def idle_hot_slots(self) -> list[int]:
        """Hot-plugged slots with no interface bound: their NICs can be unplugged (the guest
        has hidden them once the last request was applied)."""
        return [s for s in range(self.cold, len(self.taps))
                if self.bound[s] is None and self._live(s)]

    def leave(self, slot: int) -> None:
        """The slot's NIC is being unplugged: no interface binds to it, no request lists it."""
        self.leaving.add(slot)

    def left(self, slot: int) -> None:
        """The slot's NIC is unplugged (its tap went with QEMU's descriptor): reusable."""
        self.leaving.discard(slot)
        self.vacant.add(slot)

    def hidden(self) -> dict[str, Any]:
        """The request that hides every slot (nothing bound): what a VM template applies
        before it is saved, so its clones wake with it applied (:meth:`mark_applied`)."""
        return {"nics": [{"slot_mac": slot_mac(i), "interface": None}
                         for i in range(len(self.taps)) if self._live(i)]}

    def mark_applied(self, request: dict[str, Any]) -> None:
        """The agent took ``request``: the next :meth:`sync` answers only a change."""
        self.applied = request

    def _splices(self) -> list[tuple[str, str]]:
        return [(b.name, self.taps[s]) for s, b in enumerate(self.bound) if b is not None]

    def _save(self) -> None:
        if self.record is not None:
            atomic_write(self.record, json.dumps({
                "netns": self.spec_path, "taps": self.taps,
                "splices": [list(s) for s in self._splices()]}).encode())

    def close(self) -> None:
        """Undo everything on the host: splices, taps, our fds and the record; idempotent."""
        try:
            if self.taps:
                _netlink().teardown(self.path, self._splices(), self.taps)
        finally:
            self.handed_over()
            self.bound = [None] * len(self.bound)
            if self.netns_fd >= 0:
                os.close(self.netns_fd)
                self.netns_fd = -1
            if self.record is not None:
                self.record.unlink(missing_ok=True)


def reap(run_dir: Path) -> None:
    """After its owner died: undo what a run directory's record names (best effort, logged).

    Only a namespace the spec named can outlive the VM with our filters in it;
    one strongbox made died with the VM and its owner.
    """
    try:
        record = json.loads((run_dir / RECORD).read_text())
        netns, taps = record.get("netns"), [str(t) for t in record.get("taps") or []]
        splices = [(str(v), str(t)) for v, t in record.get("splices") or []]
    except FileNotFoundError:
        return
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("%s/%s: unreadable (%s); nothing undone", run_dir, RECORD, exc)
        return
    if isinstance(netns, str) and netns:
        try:
            _netlink().teardown(netns, splices, taps)
        except SandboxError as exc:
            log.warning("%s", exc)
