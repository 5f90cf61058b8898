"""Kata's "tcfilter" plumbing for one interface: a tap beside the veth, frames redirected both ways.

The guest's virtio-net NIC sits on a tap; the engine's veth keeps its
addresses, port mappings and CNI state on the host side. Two ingress qdiscs
and two u32 match-all filters with ``mirred egress redirect`` splice them: a
frame arriving on the veth leaves through the tap (to QEMU), a frame QEMU
writes into the tap leaves through the veth. No bridge, no address on the tap.

The tap is created by *opening* ``/dev/net/tun``: the kernel puts a new tun
device in the network namespace of the thread that opened the file, so the
whole setup runs on a short-lived thread that joined the namespace
(``interfaces.in_netns``: setns with CLONE_NEWNET changes only the calling
thread) and does open + TUNSETIFF and all its netlink there, then exits.
That needs no helper process and no fd passing, and the rest of the process
never leaves the host namespace. The fd we hand back is the only thing a
jailed QEMU needs (``-netdev tap,fd=N``): no CAP_NET_ADMIN, no netlink, no
``/dev/net/tun`` in the jail. The tap is not persistent: when the last fd
(ours, QEMU's) closes, the kernel deletes it, so a kill -9 of everyone
leaves no tap; ``teardown`` also deletes it by name for the live case.

IFF_VNET_HDR is off by default: each frame on the fd is then a bare Ethernet
frame, which is what QEMU expects of an fd without it (it probes the flag
with TUNGETIFF). Turning it on (``vnet_hdr=True``) lets QEMU pass checksum
and GSO offloads, a throughput matter for the benchmarks, not a correctness one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from strongbox.errors import SandboxError
from strongbox.sandbox.network.interfaces import TAP_PREFIX, in_netns

TUNSETIFF = 0x400454CA
TUNSETOWNER = 0x400454CC
TUNSETGROUP = 0x400454CE
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFNAMSIZ = 16
ETH_P_ALL = 0x0003
INGRESS = 0xFFFF0000  # handle ffff: of the ingress qdisc
#: The priority of strongbox's filter, so teardown removes ours and no one else's.
FILTER_PRIO = 49150
_ENOENT_LIKE = {2, 19, 22}  # ENOENT, ENODEV, EINVAL: "already gone" answers of tc and link del


def tap_name(index: int) -> str:
    """``sbtap<ifindex of the veth>``: deterministic, so teardown finds it from the veth alone."""
    if index <= 0:
        raise ValueError(f"interface index must be positive, got {index}")
    name = f"{TAP_PREFIX}{index}"
    assert len(name) < IFNAMSIZ  # ifindex is a positive int32: at most 10 digits
    return name


@dataclass(frozen=True)
class Tap:
    """A tap spliced to ``veth``; ``fd`` is the queue QEMU gets (close it once QEMU has it)."""

    name: str
    index: int
    fd: int
    veth: str
    veth_index: int
    mtu: int


def open_tap(name: str, *, vnet_hdr: bool = False, owner: int | None = None,
             group: int | None = None) -> int:
    """Create tap ``name`` in *this thread's* namespace; its fd (CLOEXEC, blocking).

    ``owner``/``group`` (TUNSETOWNER/TUNSETGROUP) matter only to a process that would
    re-attach by name; one given our fd needs neither.
    """
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), flags))
        if owner is not None:
            fcntl.ioctl(fd, TUNSETOWNER, owner)
        if group is not None:
            fcntl.ioctl(fd, TUNSETGROUP, group)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _link_index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def _redirect(ipr: Any, src: int, dst: int) -> None:
    """Ingress qdisc on ``src`` (kept if one exists) and our match-all redirect to ``dst``."""
    try:
        ipr.tc("add", "ingress", src, INGRESS)
    except NetlinkError as exc:
        if exc.code != 17:  # EEXIST: an ingress qdisc someone made; we only add a filter
            raise
    ipr.tc("add-filter", "u32", src, parent=INGRESS, prio=FILTER_PRIO, protocol=ETH_P_ALL,
           target=0x10001, keys=["0x0/0x0+0"],
           action=[{"kind": "mirred", "direction": "egress", "action": "redirect",
                    "ifindex": dst}])


def setup(netns: str, veth: str, *, vnet_hdr: bool = False, owner: int | None = None,
          group: int | None = None) -> Tap:
    """Make ``sbtap<index>`` beside ``veth`` in ``netns`` and redirect every frame both ways.

    On any failure nothing of ours is left (the tap, its fd, the veth's filter
    and the ingress qdisc if it was ours) and one SandboxError names the
    interface.
    """
    def work(ipr: Any) -> Tap:
        fd = -1
        try:
            veth_index = _link_index(ipr, veth)
            if veth_index is None:
                raise SandboxError(f"network interface {veth} not found in {netns}")
            name = tap_name(veth_index)
            mtu = int(ipr.get_links(veth_index)[0].get_attr("IFLA_MTU"))
            fd = open_tap(name, vnet_hdr=vnet_hdr, owner=owner, group=group)
            index = _link_index(ipr, name)
            if index is None:
                raise SandboxError(f"network interface {veth}: tap {name} vanished")
            ipr.link("set", index=index, mtu=mtu, state="up")
            _redirect(ipr, veth_index, index)
            _redirect(ipr, index, veth_index)
            return Tap(name=name, index=index, fd=fd, veth=veth, veth_index=veth_index, mtu=mtu)
        except Exception as exc:  # pyroute2 raises more than OSError (KeyError on bad args)
            if fd >= 0:  # only then is anything ours: before it, a live tap may own the name
                with contextlib.suppress(Exception):  # the first error is the one to report
                    _teardown(ipr, veth)
                os.close(fd)
            if isinstance(exc, SandboxError):
                raise
            raise SandboxError(f"network interface {veth}: tcfilter setup failed: {exc}") from exc

    return in_netns(netns, work)


def _gone(call: Callable[[], object]) -> None:
    """Run one removal; "no such device/qdisc/filter" means it is already done."""
    try:
        call()
    except NetlinkError as exc:
        if exc.code not in _ENOENT_LIKE:
            raise


def _teardown(ipr: Any, veth: str) -> None:
    veth_index = _link_index(ipr, veth)
    if veth_index is None:
        return  # the veth went away: its qdisc and filters went with it
    tap_index = _link_index(ipr, tap_name(veth_index))
    if tap_index is not None:
        _gone(lambda: ipr.link("del", index=tap_index))  # its qdisc and filter go with it
    # tcm_info = priority << 16 | protocol (network order), spelled out: without a kind
    # pyroute2 fills in neither, and an info of 0 deletes *every* filter of the qdisc.
    info = (FILTER_PRIO << 16) | socket.htons(ETH_P_ALL)
    _gone(lambda: ipr.tc("del-filter", index=veth_index, parent=INGRESS, info=info))
    try:
        others = ipr.get_filters(index=veth_index, parent=INGRESS)
    except NetlinkError as exc:
        if exc.code in _ENOENT_LIKE:
            return
        raise
    if not list(others):
        _gone(lambda: ipr.tc("del", "ingress", veth_index, INGRESS))


def teardown(netns: str, veth: str) -> None:
    """Remove the tap, filter and qdisc strongbox made for ``veth``; idempotent.

    Found by name (``sbtap<veth's index>``, our filter priority), so it needs
    no state from ``setup`` and works after a crash. The veth's ingress qdisc
    goes only when no one else's filter is left on it. A namespace or veth
    that is gone already means there is nothing to do.
    """
    if not os.path.exists(netns):
        return
    try:
        in_netns(netns, lambda ipr: _teardown(ipr, veth))
    except (OSError, NetlinkError) as exc:
        raise SandboxError(f"network interface {veth}: tcfilter teardown failed: {exc}") from exc
