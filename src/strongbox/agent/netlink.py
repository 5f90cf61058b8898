"""A minimal rtnetlink client: message packing and parsing, and one request-at-a-time socket.

This is the kernel conversation only; what to configure lives in
:mod:`.netconfig` (one interface) and :mod:`.nicslots` (the VM's NIC slots).
The packing and parsing functions are pure, so they are unit-tested without
privileges.

Why raw netlink through ``_socket`` and ``struct``: the agent is PID 1 under
emulation, where each imported module costs milliseconds of boot. ``socket``
pulls in ``enum``; the C module ``_socket`` has everything needed
(``AF_NETLINK`` sockets), so nothing slow is imported, even lazily. Nothing
here is imported at boot either: the verb that configures the network
imports it.
"""

from __future__ import annotations

import _socket
import os
import struct

AF_INET, AF_INET6 = 2, 10
NETLINK_ROUTE, SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 0, 270, 10, 11
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLM_F_ACK_TLVS = 0x200  # on an NLMSG_ERROR: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 18, 20, 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_NET_NS_FD, IFLA_PERM_ADDRESS = 1, 3, 4, 28, 54
IFF_UP = 0x1
IFA_ADDRESS, IFA_LOCAL, IFA_F_NODAD = 1, 2, 0x02
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY = 1, 4, 5, 6
RT_TABLE_MAIN, RTPROT_STATIC, RTN_UNICAST, RTNH_F_ONLINK = 254, 4, 1, 0x4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
EEXIST = 17

NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
# family, dst_len, src_len, tos, table, protocol, scope, type, flags
RTMSG = struct.Struct("=BBBBBBBBI")
RTATTR = struct.Struct("=HH")  # len, type
NLMSGERR = struct.Struct("=i")  # error, followed by the offending nlmsghdr

_RECV_SIZE = 1 << 16
_TIMEOUT = 5.0


class Link:
    """One network interface as RTM_GETLINK reports it.

    ``perm_mac`` is the permanent address (IFLA_PERM_ADDRESS), which a
    virtio-net NIC reads from its device config and which survives any MAC
    change; ``""`` when the device has none (a veth, a dummy).
    """

    __slots__ = ("index", "mac", "mtu", "name", "perm_mac", "up")

    def __init__(self, index: int, name: str, mac: str, mtu: int, up: bool,
                 perm_mac: str = "") -> None:
        self.index, self.name, self.mac, self.mtu, self.up = index, name, mac, mtu, up
        self.perm_mac = perm_mac

    def __repr__(self) -> str:
        perm = f", perm_mac={self.perm_mac!r}" if self.perm_mac else ""
        return (f"Link({self.index}, {self.name!r}, {self.mac!r}, mtu={self.mtu}, "
                f"up={self.up}{perm})")


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes as the kernel requires between attributes."""
    length = RTATTR.size + len(payload)
    return RTATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def parse_attrs(data: bytes) -> dict[int, bytes]:
    """The rtattrs of one message body; a malformed length ends the walk rather than looping."""
    attrs: dict[int, bytes] = {}
    offset = 0
    while offset + RTATTR.size <= len(data):
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size or offset + length > len(data):
            break
        attrs[kind & 0x3FFF] = data[offset + RTATTR.size:offset + length]  # drop NLA_F_ flags
        offset += (length + 3) & ~3
    return attrs


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    """A complete netlink request: header plus body (body already padded)."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def split_messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """Split one datagram into (type, flags, seq, payload); stops at a truncated header."""
    out = []
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            break
        out.append((kind, flags, seq, data[offset + NLMSGHDR.size:offset + length]))
        offset += (length + 3) & ~3
    return out


def parse_error(flags: int, payload: bytes) -> tuple[int, str]:
    """(errno, kernel's extended-ack text or "") of an NLMSG_ERROR; errno 0 is an ACK.

    The socket sets NETLINK_CAP_ACK, so only the request's header is echoed and
    any extack attributes start right after it.
    """
    (error,) = NLMSGERR.unpack_from(payload)
    text = ""
    if flags & NLM_F_ACK_TLVS:
        tlvs = parse_attrs(payload[NLMSGERR.size + NLMSGHDR.size:])
        text = tlvs.get(NLMSGERR_ATTR_MSG, b"").split(b"\0", 1)[0].decode(errors="replace")
    return -error, text


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def parse_link(payload: bytes) -> Link:
    """A Link from an RTM_NEWLINK payload (ifinfomsg + attributes)."""
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(payload)
    attrs = parse_attrs(payload[IFINFOMSG.size:])
    name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
    mtu_raw = attrs.get(IFLA_MTU, b"")
    mtu = int.from_bytes(mtu_raw, "little") if len(mtu_raw) == 4 else 0
    return Link(index, name, _mac_text(attrs.get(IFLA_ADDRESS, b"")), mtu, bool(flags & IFF_UP),
                _mac_text(attrs.get(IFLA_PERM_ADDRESS, b"")))


def link_request(index: int, name: str = "", mtu: int = 0, up: bool | None = None,
                 mac: str = "", netns_fd: int = -1) -> bytes:
    """RTM_NEWLINK body changing an existing link: name, MTU, MAC, UP flag and/or namespace.

    ``mac`` (``aa:bb:..``) is IFLA_ADDRESS; ask it of a down link, as most
    drivers refuse to change a running one's. ``netns_fd`` (an open
    ``/proc/.../ns/net``) moves the link to that namespace, which takes it down
    and drops its addresses; with ``name`` too, the kernel gives it that name
    in the target namespace, so a name taken here does not matter. A name
    taken *there* fails with EEXIST after the move is done (seen on Linux
    6.18: the link arrives under its old name), so check before asking.
    """
    flags = IFF_UP if up else 0
    change = IFF_UP if up is not None else 0
    body = IFINFOMSG.pack(0, 0, index, flags, change)
    if name:
        body += attr(IFLA_IFNAME, name.encode() + b"\0")
    if mtu:
        body += attr(IFLA_MTU, struct.pack("=I", mtu))
    if mac:
        body += attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))
    if netns_fd >= 0:
        body += attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
    return body


def addr_request(index: int, family: int, address: bytes, prefix: int) -> bytes:
    """RTM_NEWADDR body; IPv6 gets IFA_F_NODAD so the address is usable at once.

    Duplicate address detection would hold the address tentative for a second
    or more; the host already owns the address uniqueness problem.
    """
    flags = IFA_F_NODAD if family == AF_INET6 else 0
    body = IFADDRMSG.pack(family, prefix, flags, RT_SCOPE_UNIVERSE, index)
    return body + attr(IFA_LOCAL, address) + attr(IFA_ADDRESS, address)


def route_request(index: int, family: int, destination: bytes, prefix: int,
                  gateway: bytes, metric: int = 0, onlink: bool = False) -> bytes:
    """RTM_NEWROUTE body in the main table: a device route without gateway, else via it."""
    scope = RT_SCOPE_LINK if not gateway and family == AF_INET else RT_SCOPE_UNIVERSE
    body = RTMSG.pack(family, prefix, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, scope,
                      RTN_UNICAST, RTNH_F_ONLINK if onlink else 0)
    if prefix:
        body += attr(RTA_DST, destination)
    if gateway:
        body += attr(RTA_GATEWAY, gateway)
    body += attr(RTA_OIF, struct.pack("=i", index))
    if metric:
        body += attr(RTA_PRIORITY, struct.pack("=I", metric))
    return body


class Netlink:
    """A NETLINK_ROUTE socket that sends one request at a time and waits for its answer.

    A netlink socket speaks for the network namespace it was created in, for
    its whole life, whichever thread later uses it.
    """

    def __init__(self) -> None:
        self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        try:
            self.sock.settimeout(_TIMEOUT)
            for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                try:
                    self.sock.setsockopt(SOL_NETLINK, option, 1)
                except OSError:
                    pass  # an older kernel: plain errors without the kernel's text
            self.sock.bind((0, 0))
        except BaseException:
            self.sock.close()
            raise
        self.seq = int.from_bytes(os.urandom(2), "little")

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send and collect (type, payload) answers; raises OSError(errno, text) on NLMSG_ERROR.

        Bounded: the socket times out, and a dump ends at NLMSG_DONE, a plain
        request at its ACK.
        """
        self.seq += 1
        seq = self.seq
        self.sock.sendto(message(kind, flags | NLM_F_REQUEST | NLM_F_ACK, seq, body), (0, 0))
        answers: list[tuple[int, bytes]] = []
        while True:
            for mtype, mflags, mseq, payload in split_messages(self.sock.recv(_RECV_SIZE)):
                if mseq != seq:
                    continue  # a stale answer to an earlier, timed-out request
                if mtype == NLMSG_DONE:
                    return answers
                if mtype == NLMSG_ERROR:
                    errno, text = parse_error(mflags, payload)
                    if errno:
                        raise OSError(errno, os.strerror(errno) + (f" ({text})" if text else ""))
                    return answers
                answers.append((mtype, payload))

    def links(self) -> list[Link]:
        """Every link in this socket's network namespace (RTM_GETLINK dump)."""
        answers = self.request(RTM_GETLINK, NLM_F_DUMP, IFINFOMSG.pack(0, 0, 0, 0, 0))
        return [parse_link(p) for t, p in answers if t == RTM_NEWLINK]


def find_by_mac(links: list[Link], mac: str) -> Link | None:
    """The link with this current MAC (case-insensitive), or None."""
    mac = mac.lower()
    return next((link for link in links if link.mac == mac), None)
