"""Kata's "tcfilter" plumbing: a NIC slot's tap spliced to an engine's veth, both ways.

The guest's virtio-net NIC sits on a tap; the engine's veth keeps its
addresses, port mappings and CNI state on the host side. Two ingress qdiscs
and two u32 match-all filters with ``mirred egress redirect`` splice them: a
frame arriving on the veth leaves through the tap (to QEMU), a frame QEMU
writes into the tap leaves through the veth. No bridge, no address on the tap.

The taps are made before QEMU starts (:mod:`.taps`): a microvm has no
hotplug, so every VM gets a fixed number of NIC slots, and a veth that shows
up later (Docker's hook adds it after ``create``) is spliced to a free
slot's tap (:func:`splice`). All netlink runs on a thread inside the
namespace (``interfaces.in_netns``). The taps die with their last fd; what
can outlive QEMU is our filter on an engine's veth, which :func:`teardown`
removes by priority and which needs nothing but names, so it works after a
crash too.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from strongbox.errors import SandboxError
from strongbox.sandbox.network import egress as egress_filters
from strongbox.sandbox.network.egress import Egress
from strongbox.sandbox.network.interfaces import ARPHRD_ETHER as ARPHRD_ETHER
from strongbox.sandbox.network.interfaces import in_netns
from strongbox.sandbox.network.interfaces import list_interfaces as list_interfaces

ETH_P_ALL = 0x0003
INGRESS = 0xFFFF0000  # handle ffff: of the ingress qdisc
#: The priority of strongbox's filters, so unsplice removes ours and no one else's.
FILTER_PRIO = 49150
_ENOENT_LIKE = {2, 19, 22}  # ENOENT, ENODEV, EINVAL: "already gone" answers of tc and link del


@dataclass(frozen=True)
class Splice:
    """A veth of the engine's spliced to one of our taps."""

    veth: str
    veth_index: int
    tap: str
    mtu: int


def _link_index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def _redirect(ipr: Any, src: int, dst: int, egress: Egress | None = None) -> None:
    """Ingress qdisc on ``src`` (kept if one exists), the ``egress`` policy's filters and
    our match-all redirect to ``dst``: the policy is in place before any frame passes."""
    try:
        ipr.tc("add", "ingress", src, INGRESS)
    except NetlinkError as exc:
        if exc.code != 17:  # EEXIST: an ingress qdisc someone made; we only add a filter
            raise
    if egress is not None:
        egress_filters.install(ipr, src, egress)
    ipr.tc("add-filter", "u32", src, parent=INGRESS, prio=FILTER_PRIO, protocol=ETH_P_ALL,
           target=0x10001, keys=["0x0/0x0+0"],
           action=[{"kind": "mirred", "direction": "egress", "action": "redirect",
                    "ifindex": dst}])


def _ours(ipr: Any, index: int) -> bool:
    """Whether the link's ingress has a filter at strongbox's priority."""
    try:
        found = list(ipr.get_filters(index=index, parent=INGRESS))
    except NetlinkError as exc:
        if exc.code in _ENOENT_LIKE:
            return False
        raise
    return any((int(f["info"]) >> 16) == FILTER_PRIO for f in found)


def splice(netns: str, veth: str, tap: str, egress: Egress | None = None) -> Splice:
    """Redirect every frame between ``veth`` and ``tap`` (both in ``netns``), the tap at the
    veth's MTU; what the guest sends only where ``egress`` allows (:mod:`.egress`).

    A veth that already carries strongbox's filter belongs to another sandbox
    sharing the namespace: refused, untouched. On any failure nothing of this
    splice is left, and one SandboxError names the interface.
    """
    def work(ipr: Any) -> Splice:
        veth_index = _link_index(ipr, veth)
        if veth_index is None:
            raise SandboxError(f"network interface {veth} not found in {netns}")
        tap_index = _link_index(ipr, tap)
        if tap_index is None:
            raise SandboxError(f"network interface {veth}: tap {tap} is gone (did QEMU exit?)")
        if _ours(ipr, veth_index):
            raise SandboxError(f"network interface {veth}: its frames go to another sandbox "
                               "already (one VM per network namespace)")
        try:
            mtu = int(ipr.get_links(veth_index)[0].get_attr("IFLA_MTU"))
            ipr.link("set", index=tap_index, mtu=mtu, state="up")
            _redirect(ipr, veth_index, tap_index)
            _redirect(ipr, tap_index, veth_index, egress)
        except Exception as exc:  # pyroute2 raises more than OSError
            with contextlib.suppress(Exception):  # the first error is the one to report
                _unsplice(ipr, veth, tap)
            raise SandboxError(f"network interface {veth}: tcfilter setup failed: {exc}") from exc
        return Splice(veth=veth, veth_index=veth_index, tap=tap, mtu=mtu)

    return in_netns(netns, work)


def _gone(call: Callable[[], object]) -> None:
    """Run one removal; "no such device/qdisc/filter" means it is already done."""
    try:
        call()
    except NetlinkError as exc:
        if exc.code not in _ENOENT_LIKE:
            raise


def _remove_filter(ipr: Any, index: int) -> None:
    """Our filter off ``index``'s ingress, and the qdisc when no one else's filter is left."""
    # tcm_info = priority << 16 | protocol (network order), spelled out: without a kind
    # pyroute2 fills in neither, and an info of 0 deletes *every* filter of the qdisc.
    info = (FILTER_PRIO << 16) | socket.htons(ETH_P_ALL)
    _gone(lambda: ipr.tc("del-filter", index=index, parent=INGRESS, info=info))
    try:
        others = list(ipr.get_filters(index=index, parent=INGRESS))
    except NetlinkError as exc:
        if exc.code in _ENOENT_LIKE:
            return
        raise
    if not others:
        _gone(lambda: ipr.tc("del", "ingress", index, INGRESS))


def _unsplice(ipr: Any, veth: str, tap: str) -> None:
    tap_index = _link_index(ipr, tap)
    if tap_index is not None:
        _gone(lambda: egress_filters.remove(ipr, tap_index))
        _remove_filter(ipr, tap_index)
    veth_index = _link_index(ipr, veth)
    if veth_index is not None:  # a veth that went away took its qdisc and filters with it
        _remove_filter(ipr, veth_index)


def _delete_taps(ipr: Any, names: list[str]) -> None:
    for name in names:
        index = _link_index(ipr, name)
        if index is not None:
            _gone(functools.partial(ipr.link, "del", index=index))  # its filters go too


def teardown(netns: str, splices: list[tuple[str, str]], taps: list[str]) -> None:
    """Undo ``splice`` for each (veth, tap) and delete ``taps``; idempotent, names only.

    The veth's ingress qdisc goes only when no one else's filter is left on it;
    a namespace, veth or tap that is gone already means there is nothing to do.
    """
    if not os.path.exists(netns):
        return

    def work(ipr: Any) -> None:
        for veth, tap in splices:
            _unsplice(ipr, veth, tap)
        _delete_taps(ipr, taps)

    try:
        in_netns(netns, work)
    except (OSError, NetlinkError) as exc:
        raise SandboxError(f"network namespace {netns}: tcfilter teardown failed: {exc}"
                           ) from exc


def move_links(netns: str, names: list[str], target_fd: int) -> None:
    """Move the links ``names`` of ``netns`` into the namespace open at ``target_fd``: a
    pooled VM's taps into the engine's namespace (QEMU's fds keep them working)."""
    def work(ipr: Any) -> None:
        for name in names:
            index = _link_index(ipr, name)
            if index is None:
                raise SandboxError(f"tap {name}: not in {netns}")
            ipr.link("set", index=index, net_ns_fd=target_fd)

    try:
        in_netns(netns, work)
    except (OSError, NetlinkError) as exc:
        raise SandboxError(f"moving taps {names} out of {netns}: {exc}") from exc


def set_up(netns: str, names: list[str]) -> None:
    """Bring the links ``names`` of ``netns`` up (a link moved between namespaces is down)."""
    def work(ipr: Any) -> None:
        for name in names:
            index = _link_index(ipr, name)
            if index is None:
                raise SandboxError(f"tap {name}: not in {netns}")
            ipr.link("set", index=index, state="up")

    try:
        in_netns(netns, work)
    except (OSError, NetlinkError) as exc:
        raise SandboxError(f"setting taps {names} up in {netns}: {exc}") from exc
