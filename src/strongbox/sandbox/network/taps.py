"""Taps makes the tap devices of a VM's NIC slots, before QEMU starts.

A tap is created by *opening* ``/dev/net/tun``: the kernel puts the new
device in the network namespace of the thread that opened the file, so this
runs on a thread inside the sandbox's namespace (:mod:`.nsthread`). The fd is
the only thing a jailed QEMU needs (``-netdev tap,fd=N``): no CAP_NET_ADMIN,
no netlink, no ``/dev/net/tun`` in the jail. The taps are not persistent:
when the last fd (ours, QEMU's) closes, the kernel deletes them, so a kill -9
of everyone leaves no tap. Plain ioctls, no pyroute2: this is on every
launch's path before QEMU exists, and importing pyroute2 costs a quarter of
a second that the rest of the launch overlaps instead (:mod:`.slots`).

The slots' taps have IFF_VNET_HDR (:mod:`.slots`): QEMU probes the flag
(TUNGETIFF) and then offers the guest checksum and segmentation offloads, so
a guest sends 64 KiB segments with no checksum computed instead of one
checksummed 1500-byte frame at a time; under TCG, where every guest
instruction is emulated, that is 2.4x (host to guest) and 2.6x (guest to
host) the throughput (benchmarks/RESULTS.md). The kernel carries such
segments across the tc redirect and the engine's veth as they are, and
segments them where a real wire needs it. Without the flag each frame on the
fd is a bare Ethernet frame.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import struct

from strongbox.errors import SandboxError
from strongbox.sandbox.network.nsthread import run_in

TUNSETIFF = 0x400454CA
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
IFF_UP = 0x1
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFNAMSIZ = 16
#: Name prefix of strongbox's taps; discovery of the engine's interfaces skips them.
TAP_PREFIX = "sbt"
#: At most this many slots: one decimal digit in the tap's name.
#: Boot slots ([network] nic_slots, at most 4) and hot-plugged NICs (q35's root ports).
MAX_SLOTS = 24
_IFREQ_FLAGS = struct.Struct("16sH22x")


def tap_name(sandbox_id: str, slot: int) -> str:
    """``sbt<8 hex of the sandbox id><slot>``: unique per sandbox even when two share a
    namespace, and found again from the id alone (for the stale clean-up)."""
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"slot must be in 0..{MAX_SLOTS - 1}, got {slot}")
    name = f"{TAP_PREFIX}{hashlib.sha256(sandbox_id.encode()).hexdigest()[:8]}{slot}"
    assert len(name) < IFNAMSIZ
    return name


def open_tap(name: str, *, vnet_hdr: bool = False) -> int:
    """Create tap ``name`` in *this thread's* namespace, up; its fd (CLOEXEC, blocking)."""
    flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, _IFREQ_FLAGS.pack(name.encode(), flags))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            request = _IFREQ_FLAGS.pack(name.encode(), 0)
            _, current = _IFREQ_FLAGS.unpack(fcntl.ioctl(sock, SIOCGIFFLAGS, request))
            fcntl.ioctl(sock, SIOCSIFFLAGS, _IFREQ_FLAGS.pack(name.encode(), current | IFF_UP))
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_taps(netns: str, names: list[str], *, vnet_hdr: bool = False) -> list[int]:
    """Make the taps ``names`` (up, no address) in ``netns``; their fds, in order.

    On failure none is left (their fds closed, so the kernel deletes them) and
    one SandboxError names the tap.
    """
    def work() -> list[int]:
        fds: list[int] = []
        try:
            for name in names:
                try:
                    fds.append(open_tap(name, vnet_hdr=vnet_hdr))
                except OSError as exc:
                    raise SandboxError(f"tap {name} in {netns}: {exc.strerror}") from exc
            return fds
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    return run_in(netns, work)
