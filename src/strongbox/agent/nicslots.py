"""NIC slots: make the VM's virtio-net NICs match the host interfaces bound to them.

QEMU cannot add a NIC to a microvm after boot, and the host only learns the
sandbox's interfaces (the veths podman, Docker or CNI configured) once the
sandbox, and then each container, starts. So every VM boots with a fixed
number of NIC *slots*, each with a placeholder MAC (its *slot MAC*, which the
guest kernel reports as the NIC's permanent address, IFLA_PERM_ADDRESS,
since virtio-net reads it from the device config), and the host later binds
host interfaces to slots. :func:`apply` makes the guest match one binding:

* a bound slot's NIC appears in the root network namespace (which every
  container shares) with the host interface's name, MAC, MTU, addresses and
  routes (:func:`.netconfig.setup`);
* an unbound slot's NIC is invisible to containers: it waits in a *spare*
  network namespace, named ``sb`` and its slot MAC's last five bytes there, so ``podman run
  --network=none`` sees only ``lo``.

The steps go in an order where names never clash: first every NIC that must
leave the root namespace, or take another name there, moves to the spare one;
then every bound NIC in the spare namespace moves back under its interface's
name (IFLA_NET_NS_FD with IFLA_IFNAME: the kernel renames it in the target
namespace); then each bound NIC is configured. Applying the same request
again changes nothing. Addresses and routes are only ever added: a NIC that
leaves the root namespace loses them, one that stays keeps them.

A slot's NIC is found by its permanent address; for a device without one (the
veths of the tests) by its current MAC, the MAC its interface asks for, or the
MAC this agent last gave it.

The spare namespace is created once, on first use, by a short-lived thread
that calls ``unshare(CLONE_NEWNET)`` and opens a netlink socket and an fd of
its namespace there; the socket and the fd keep the namespace alive after the
thread ends, and the rest of the agent never leaves the root namespace.

Request (validated by :func:`validate_request`)::

    {"nics": [{"slot_mac": "02:..", "interface": <netconfig config> | None}, ...]}

Reply: ``{"interfaces": [{"name", "mac", "mtu", "index"}, ...]}``, one entry per
bound slot in request order (``index`` is the guest's ifindex).
"""

from __future__ import annotations

import _thread
import os
import time

from strongbox.agent.netconfig import (
    InvalidNetconfig,
    NetconfigError,
    check_mac,
    setup,
    step,
    validate,
)
from strongbox.agent.netlink import RTM_NEWLINK, Link, Netlink, link_request

TYPE_CHECKING = False  # typing costs milliseconds of guest boot; mypy still reads the block
if TYPE_CHECKING:
    from typing import Any

SPARE_PREFIX = "sb"  # + 10 hex digits: 12 characters, within IFNAMSIZ
_SPARE_TIMEOUT = 10.0  # seconds to create the spare namespace: an unshare and a socket


class Spare:
    """The spare network namespace: a netlink socket opened in it and an fd of it."""

    __slots__ = ("fd", "nl")

    def __init__(self, nl: Netlink, fd: int) -> None:
        self.nl, self.fd = nl, fd


_spare: Spare | None = None
#: slot MAC -> the MAC this agent last gave its NIC: how a NIC without a
#: permanent address is found again once its MAC changed.
_given: dict[str, str] = {}


def spare() -> Spare:
    """The spare namespace, created on first use and kept for the agent's life."""
    global _spare
    if _spare is None:
        _spare = _create_spare()
    return _spare


def _create_spare() -> Spare:
    # ctypes (behind _syscalls) is loaded by the agent at boot anyway; imported
    # here so that importing this module alone stays cheap.
    from strongbox.container._syscalls import CLONE_NEWNET, unshare

    done = _thread.allocate_lock()
    done.acquire()
    out: list[Spare | BaseException] = []

    def run() -> None:  # unshare(CLONE_NEWNET) moves only this thread
        try:
            unshare(CLONE_NEWNET)
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                out.append(Spare(Netlink(), fd))
            except BaseException:
                os.close(fd)
                raise
        except BaseException as exc:
            out.append(exc)
        finally:
            done.release()

    _thread.start_new_thread(run, ())
    if not done.acquire(timeout=_SPARE_TIMEOUT) or not out:
        raise NetconfigError("spare namespace: creating it: timed out")
    if isinstance(out[0], BaseException):
        raise NetconfigError(f"spare namespace: creating it: {out[0]}")
    return out[0]


class Slot:
    """One entry of the request, and where its NIC is."""

    __slots__ = ("cfg", "in_spare", "index", "label", "link", "mac")

    def __init__(self, index: int, mac: str, cfg: dict[str, Any] | None) -> None:
        self.index, self.mac, self.cfg = index, mac, cfg
        self.label = cfg["name"] if cfg else f"slot {index} ({mac})"
        self.link: Link | None = None
        self.in_spare = False

    @property
    def spare_name(self) -> str:
        """The NIC's name while it waits in the spare namespace: from its slot MAC, not
        its place in the request, so a slot that leaves the request (its hot-plugged NIC
        is being unplugged) renames no other slot's NIC and takes no name another has."""
        return SPARE_PREFIX + self.mac.replace(":", "")[2:]

    def nic(self) -> Link:
        """The slot's link, once :func:`locate` found it."""
        if self.link is None:
            raise NetconfigError(f"{self.label}: not located")
        return self.link


def validate_request(request: Any) -> list[Slot]:
    """The slots of a request, interfaces validated; raises one InvalidNetconfig naming the field.

    Strict like :func:`.netconfig.validate`: the host built the request from its
    own view, so anything odd is a host bug better reported than half-applied.
    """
    nics = request.get("nics") if isinstance(request, dict) else None
    if not isinstance(nics, list):
        raise InvalidNetconfig(f"nics: expected a list, got {nics!r}")
    slots: list[Slot] = []
    macs: dict[str, int] = {}
    names: dict[str, int] = {}
    for i, item in enumerate(nics):
        where = f"nics[{i}]"
        if not isinstance(item, dict):
            raise InvalidNetconfig(f"{where}: expected an object, got {item!r}")
        unknown = sorted(set(item) - {"slot_mac", "interface"})
        if unknown:
            raise InvalidNetconfig(f"{where}.{unknown[0]}: unknown field")
        raw = item.get("slot_mac")
        if type(raw) is not str:
            raise InvalidNetconfig(f"{where}.slot_mac: expected str, got {raw!r}")
        mac = check_mac(raw, f"{where}.slot_mac")
        if mac in macs:
            raise InvalidNetconfig(f"{where}.slot_mac: {mac} is nics[{macs[mac]}]'s too")
        macs[mac] = i
        interface = item.get("interface")
        cfg = None
        if interface is not None:
            if not isinstance(interface, dict):
                raise InvalidNetconfig(f"{where}.interface: expected an object or null, "
                                       f"got {interface!r}")
            try:
                cfg = validate(interface)
            except InvalidNetconfig as err:
                raise InvalidNetconfig(f"{where}.interface.{err}") from None
            if cfg["name"] in names:
                raise InvalidNetconfig(f"{where}.interface.name: {cfg['name']!r} is "
                                       f"nics[{names[cfg['name']]}]'s too")
            names[cfg["name"]] = i
        slots.append(Slot(i, mac, cfg))
    return slots


def locate(slots: list[Slot], root: list[Link], spare_links: list[Link],
           given: dict[str, str] | None = None) -> None:
    """Find each slot's link in either namespace; raises NetconfigError for one not found.

    By permanent address first (a virtio-net NIC's slot MAC, whatever its MAC
    is now), then by current MAC (devices without a permanent address), then,
    for a bound slot, by the interface's MAC, then by the MAC this agent last
    gave the slot (``given``: slot MAC -> MAC; such a device after a MAC
    change). Each pass only considers links no slot has claimed yet.
    """
    candidates = [(link, False) for link in root] + [(link, True) for link in spare_links]
    candidates = [c for c in candidates if c[0].mac.strip("0:")]  # not lo
    claimed: set[int] = set()
    for kind in ("perm_mac", "mac", "interface", "given"):
        for slot in slots:
            if slot.link is not None:
                continue
            if kind == "interface":
                want = slot.cfg["mac"] if slot.cfg else ""
            else:
                want = (given or {}).get(slot.mac, "") if kind == "given" else slot.mac
            for n, (link, in_spare) in enumerate(candidates):
                have = link.perm_mac if kind == "perm_mac" else link.mac
                if want and n not in claimed and have == want:
                    claimed.add(n)
                    slot.link, slot.in_spare = link, in_spare
                    break
    for slot in slots:
        if slot.link is None:
            also = f" nor MAC address {slot.cfg['mac']}" if slot.cfg else ""
            raise NetconfigError(f"{slot.label}: no interface has slot MAC {slot.mac}{also}")


def _plan(slots: list[Slot], root: list[Link], spare_links: list[Link]) -> list[Slot]:
    """The slots whose NIC leaves the root namespace; raises if a name would clash.

    Checked before anything changes: a move whose rename fails still moves the
    link (under its old name; seen on Linux 6.18), so a clash must never reach the
    kernel: the NIC would be left in the root namespace under its spare name.
    """
    leaving = [s for s in slots if not s.in_spare
               and (s.cfg is None or s.nic().name != s.cfg["name"])]
    spare_names = {link.name for link in spare_links}
    for s in leaving:
        if s.spare_name in spare_names:
            raise NetconfigError(f"{s.label}: moving to the spare namespace as {s.spare_name}: "
                                 "another interface has that name there")
    moved = {s.nic().index for s in leaving}
    staying = {link.name for link in root if link.index not in moved}
    for s in slots:
        if s.cfg is not None and (s.in_spare or s in leaving) and s.cfg["name"] in staying:
            raise NetconfigError(f"{s.label}: moving to the root namespace: another interface "
                                 f"has the name {s.cfg['name']} there")
    return leaving


#: A hot-plugged NIC (q35) shows up once the guest has probed it: how long to wait.
APPEAR_TIMEOUT = 10.0


def _located(slots: list[Slot], nl: Netlink, sp: Spare) -> tuple[list[Link], list[Link]]:
    """:func:`locate` against the current links, again until ``APPEAR_TIMEOUT`` while a
    slot's NIC has not appeared yet; the links it found them in."""
    deadline = time.monotonic() + APPEAR_TIMEOUT
    while True:
        root, spare_links = nl.links(), sp.nl.links()
        try:
            locate(slots, root, spare_links, _given)
            return root, spare_links
        except NetconfigError:
            if time.monotonic() > deadline:
                raise
            for slot in slots:
                slot.link, slot.in_spare = None, False
            time.sleep(0.05)


def apply(request: Any) -> dict[str, Any]:
    """Make the guest's NICs match the request; idempotent. See the module docstring."""
    slots = validate_request(request)
    sp = spare()
    root_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Netlink() as nl:
            root, spare_links = _located(slots, nl, sp)
            leaving = _plan(slots, root, spare_links)
            for s in leaving:  # (a) out of the root namespace, so no name clashes there
                step(nl, s.label, f"moving {s.nic().name} to the spare namespace as "
                     f"{s.spare_name}", RTM_NEWLINK, 0,
                     link_request(s.nic().index, name=s.spare_name, netns_fd=sp.fd))
            if leaving:
                spare_links = sp.nl.links()
                _restore_slot_macs([s for s in leaving if s.cfg is None], spare_links, sp.nl)
            by_name = {link.name: link for link in spare_links}
            for s in slots:  # (b) bound NICs back into the root namespace, under their name
                if s.cfg is None or not (s.in_spare or s in leaving):
                    continue
                link = by_name.get(s.spare_name) if s in leaving else s.nic()
                if link is None:
                    raise NetconfigError(f"{s.label}: {s.spare_name} vanished from the spare "
                                         "namespace")
                step(sp.nl, s.label, f"moving {link.name} from the spare namespace",
                     RTM_NEWLINK, 0, link_request(link.index, name=s.cfg["name"], netns_fd=root_fd))
            now = {link.name: link for link in nl.links()}  # a move may change the ifindex
            interfaces = []
            for s in slots:  # (c) MAC, MTU, up, addresses, routes
                if s.cfg is None:
                    continue
                link = now.get(s.cfg["name"])
                if link is None:
                    raise NetconfigError(f"{s.label}: not in the root namespace after the move")
                _given[s.mac] = s.cfg["mac"]
                link = setup(nl, link, s.cfg)
                interfaces.append({"name": link.name, "mac": link.mac, "mtu": link.mtu,
                                   "index": link.index})
            return {"interfaces": interfaces}
    finally:
        os.close(root_fd)


def _restore_slot_macs(unbound: list[Slot], spare_links: list[Link], nl: Netlink) -> None:
    """Give the NICs just unbound their slot MAC again (they are down after the move).

    So a spare NIC carries no stale host MAC, and one without a permanent
    address (a veth in the tests) is found by its slot MAC next time.
    """
    by_name = {link.name: link for link in spare_links}
    for s in unbound:
        link = by_name.get(s.spare_name)
        if link is not None and link.mac != s.mac:
            step(nl, s.label, f"restoring slot MAC {s.mac}", RTM_NEWLINK, 0,
                 link_request(link.index, mac=s.mac))
        _given.pop(s.mac, None)
