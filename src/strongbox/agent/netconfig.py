"""Guest network configuration over rtnetlink: find a NIC by MAC, give it the host's setup.

The host mirrors each interface of the sandbox's network namespace onto a
virtio-net NIC with the same MAC address (issue 13, Kata's ``tcfilter``
model); the guest's name for that NIC is whatever the kernel chose, so the
NIC is found by MAC and then renamed, sized, brought up, addressed and routed
exactly as the host interface is.

Why raw netlink through ``_socket`` and ``struct``: the agent is PID 1 under
emulation, where each imported module costs milliseconds of boot. ``socket``
pulls in ``enum`` and ``ipaddress`` pulls in ``functools`` and ``collections``;
the C module ``_socket`` has everything needed (``AF_NETLINK`` sockets and a
strict ``inet_pton``), so addresses are parsed with it instead and nothing
slow is imported, even lazily. Nothing here is imported at boot either: the
verb that calls :func:`configure` imports this module.

Configuration shape (validated by :func:`validate`)::

    {"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 1500,
     "addresses": [{"family": 4, "address": "10.0.0.2", "prefix": 24}],
     "routes": [{"family": 4, "destination": "", "gateway": "10.0.0.1",
                 "device": "eth0", "metric": 0, "onlink": False}]}

``destination`` ``""`` (or ``0.0.0.0/0``, ``::/0``) is the default route;
``gateway`` ``""`` or None means none; ``device`` ``""`` means this interface;
``mtu``, ``metric``, ``onlink`` are optional. What ``sandbox.network.interfaces``
sends is accepted too: ``prefix_len`` for ``prefix`` and the host's ``index``.
"""

from __future__ import annotations

import _socket
import os
import struct

TYPE_CHECKING = False  # typing costs milliseconds of guest boot; mypy still reads the block
if TYPE_CHECKING:
    from typing import Any

AF_INET, AF_INET6 = 2, 10
NETLINK_ROUTE, SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 0, 270, 10, 11
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLM_F_ACK_TLVS = 0x200  # on an NLMSG_ERROR: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 18, 20, 24
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU = 1, 3, 4
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
_IFNAMSIZ = 16
_FAMILIES = {4: AF_INET, 6: AF_INET6}
_BITS = {4: 32, 6: 128}


class NetconfigError(Exception):
    """Configuring a guest interface failed; the message names the interface and the step."""


class InvalidNetconfig(NetconfigError):
    """The configuration the host sent is malformed; the message names the field."""


class Link:
    """One network interface as RTM_GETLINK reports it."""

    __slots__ = ("index", "mac", "mtu", "name", "up")

    def __init__(self, index: int, name: str, mac: str, mtu: int, up: bool) -> None:
        self.index, self.name, self.mac, self.mtu, self.up = index, name, mac, mtu, up

    def __repr__(self) -> str:
        return f"Link({self.index}, {self.name!r}, {self.mac!r}, mtu={self.mtu}, up={self.up})"


# --- message packing and parsing (pure: unit-tested without privileges) ---

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


def parse_link(payload: bytes) -> Link:
    """A Link from an RTM_NEWLINK payload (ifinfomsg + attributes)."""
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(payload)
    attrs = parse_attrs(payload[IFINFOMSG.size:])
    name = attrs.get(IFLA_IFNAME, b"").split(b"\0", 1)[0].decode(errors="replace")
    mac = ":".join(f"{b:02x}" for b in attrs.get(IFLA_ADDRESS, b""))
    mtu_raw = attrs.get(IFLA_MTU, b"")
    mtu = int.from_bytes(mtu_raw, "little") if len(mtu_raw) == 4 else 0
    return Link(index, name, mac, mtu, bool(flags & IFF_UP))


def link_request(index: int, name: str = "", mtu: int = 0,
                 up: bool | None = None) -> bytes:
    """RTM_NEWLINK body changing an existing link: name, MTU and/or the UP flag."""
    flags = IFF_UP if up else 0
    change = IFF_UP if up is not None else 0
    body = IFINFOMSG.pack(0, 0, index, flags, change)
    if name:
        body += attr(IFLA_IFNAME, name.encode() + b"\0")
    if mtu:
        body += attr(IFLA_MTU, struct.pack("=I", mtu))
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


# --- validation ---

def _field(obj: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None or type(value) is not kind:  # bool is not an int here
        raise InvalidNetconfig(f"{where}{key}: expected {kind.__name__}, got {value!r}")
    return value


def _check_keys(obj: Any, allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise InvalidNetconfig(f"{where or 'config'}: expected an object, got {obj!r}")
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise InvalidNetconfig(f"{where}{unknown[0]}: unknown field")
    return obj


def parse_ip(family: int, text: str, where: str) -> bytes:
    """Packed address bytes; inet_pton is strict (no IPv4 shorthand, no leading zeros)."""
    try:
        return _socket.inet_pton(_FAMILIES[family], text)
    except (OSError, ValueError):
        raise InvalidNetconfig(f"{where}: not an IPv{family} address: {text!r}") from None


def parse_prefix(family: int, text: str, where: str) -> tuple[bytes, int]:
    """(network bytes, prefix length) of ``ADDR/LEN``; host bits must be clear, as for a route."""
    address, slash, length = text.partition("/")
    bits = _BITS[family]
    if not slash or not length.isdigit() or not length.isascii() or int(length) > bits:
        raise InvalidNetconfig(f"{where}: expected ADDRESS/PREFIX, got {text!r}")
    packed = parse_ip(family, address, where)
    prefix = int(length)
    host_mask = (1 << (bits - prefix)) - 1
    if int.from_bytes(packed, "big") & host_mask:
        raise InvalidNetconfig(f"{where}: host bits set in {text!r}")
    return packed, prefix


def validate(config: Any) -> dict[str, Any]:
    """The config in normalised form (packed addresses, defaults filled); raises InvalidNetconfig.

    Strict on purpose: the host built this dict from its own netlink view, so
    anything odd is a host bug better reported than half-applied.
    """
    cfg = _check_keys(config, ("name", "mac", "mtu", "addresses", "routes", "index"), "")
    _field(cfg, "index", int, "", 0)  # the host's ifindex: meaningless in the guest
    name = _field(cfg, "name", str, "")
    if not 0 < len(name.encode()) < _IFNAMSIZ or "/" in name or name.strip() != name \
            or name in (".", "..") or any(c in name for c in "\0:"):
        raise InvalidNetconfig(f"name: not a valid interface name: {name!r}")
    mac = _field(cfg, "mac", str, "").lower()
    octets = mac.split(":")
    if len(octets) != 6 or any(len(o) != 2 or o.strip("0123456789abcdef") for o in octets):
        raise InvalidNetconfig(f"mac: expected six hex octets like aa:bb:cc:dd:ee:ff, got {mac!r}")
    mtu = _field(cfg, "mtu", int, "", 0)
    if mtu and not 68 <= mtu <= 65535:
        raise InvalidNetconfig(f"mtu: {mtu} is outside 68..65535")
    addresses = []
    for i, item in enumerate(_field(cfg, "addresses", list, "", [])):
        where = f"addresses[{i}]."
        a = _check_keys(item, ("family", "address", "prefix", "prefix_len"), where)
        family = _family(a, where)
        if "prefix" in a and "prefix_len" in a:
            raise InvalidNetconfig(f"{where}prefix_len: give prefix or prefix_len, not both")
        prefix = _field(a, "prefix_len" if "prefix_len" in a else "prefix", int, where)
        if not 0 <= prefix <= _BITS[family]:
            raise InvalidNetconfig(f"{where}prefix: {prefix} is outside 0..{_BITS[family]}")
        text = _field(a, "address", str, where)
        addresses.append({"family": family, "address": text, "prefix": prefix,
                          "packed": parse_ip(family, text, where + "address")})
    routes = []
    for i, item in enumerate(_field(cfg, "routes", list, "", [])):
        where = f"routes[{i}]."
        r = _check_keys(item, ("family", "destination", "gateway", "device", "metric",
                               "onlink"), where)
        family = _family(r, where)
        dest = _field(r, "destination", str, where, "")
        dst, dst_len = parse_prefix(family, dest, where + "destination") if dest else (b"", 0)
        gw_text = _field(r, "gateway", str, where, "") if r.get("gateway") is not None else ""
        gateway = parse_ip(family, gw_text, where + "gateway") if gw_text else b""
        device = _field(r, "device", str, where, "")
        if device not in ("", name):
            raise InvalidNetconfig(f"{where}device: {device!r} is not this interface ({name!r})")
        metric = _field(r, "metric", int, where, 0)
        if not 0 <= metric <= 0xFFFFFFFF:
            raise InvalidNetconfig(f"{where}metric: {metric} is outside 0..4294967295")
        onlink = _field(r, "onlink", bool, where, False)
        if not gateway and not dst_len:
            raise InvalidNetconfig(f"{where}: a default route needs a gateway")
        if onlink and not gateway:
            raise InvalidNetconfig(f"{where}onlink: only a route via a gateway can be on-link")
        routes.append({"family": family, "destination": dest, "gateway": gw_text,
                       "dst": dst, "dst_len": dst_len, "gw": gateway, "metric": metric,
                       "onlink": onlink})
    # Device routes first: a gateway is only reachable once its subnet is routed.
    routes.sort(key=lambda r: bool(r["gw"]))
    return {"name": name, "mac": mac, "mtu": mtu, "addresses": addresses, "routes": routes}


def _family(obj: dict[str, Any], where: str) -> int:
    family = _field(obj, "family", int, where)
    if family not in _FAMILIES:
        raise InvalidNetconfig(f"{where}family: expected 4 or 6, got {family}")
    return int(family)


def describe_route(route: dict[str, Any]) -> str:
    """``default via 10.0.0.1`` / ``10.1.0.0/16`` as ``ip route`` would name it, for errors."""
    text = route["destination"] or "default"
    return f"{text} via {route['gateway']}" if route["gateway"] else text


# --- the kernel conversation ---

class Netlink:
    """A NETLINK_ROUTE socket that sends one request at a time and waits for its answer."""

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
        """Every link in this network namespace (RTM_GETLINK dump)."""
        answers = self.request(RTM_GETLINK, NLM_F_DUMP, IFINFOMSG.pack(0, 0, 0, 0, 0))
        return [parse_link(p) for t, p in answers if t == RTM_NEWLINK]


def find_by_mac(links: list[Link], mac: str) -> Link | None:
    """The link with this MAC (case-insensitive), or None."""
    mac = mac.lower()
    return next((link for link in links if link.mac == mac), None)


def configure(config: Any) -> Link:
    """Apply one interface's configuration; idempotent, so re-applying it succeeds.

    Order matters to the kernel: a link must be down to be renamed, addresses
    come before routes (their subnets make gateways reachable) and device
    routes before gateway routes. EEXIST on an address or route means it is
    already there, which is what was asked for.
    """
    cfg = validate(config)
    name = cfg["name"]
    with Netlink() as nl:
        link = find_by_mac(nl.links(), cfg["mac"])
        if link is None:
            raise NetconfigError(f"{name}: no interface has MAC address {cfg['mac']}")

        def step(what: str, kind: int, flags: int, body: bytes, exist_ok: bool = False) -> None:
            try:
                nl.request(kind, flags, body)
            except OSError as err:
                if not (exist_ok and err.errno == EEXIST):
                    raise NetconfigError(f"{name}: {what}: {err.strerror}") from None

        if link.name != name:
            if link.up:
                step(f"setting {link.name} down to rename it", RTM_NEWLINK, 0,
                     link_request(link.index, up=False))
            step(f"renaming {link.name} to {name}", RTM_NEWLINK, 0,
                 link_request(link.index, name=name))
        if cfg["mtu"] and cfg["mtu"] != link.mtu:
            step(f"setting MTU {cfg['mtu']}", RTM_NEWLINK, 0,
                 link_request(link.index, mtu=cfg["mtu"]))
        step("setting the link up", RTM_NEWLINK, 0, link_request(link.index, up=True))
        for a in cfg["addresses"]:
            step(f"adding address {a['address']}/{a['prefix']}", RTM_NEWADDR,
                 NLM_F_CREATE | NLM_F_EXCL,
                 addr_request(link.index, _FAMILIES[a["family"]], a["packed"], a["prefix"]),
                 exist_ok=True)
        for r in cfg["routes"]:
            step(f"adding route {describe_route(r)}", RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL,
                 route_request(link.index, _FAMILIES[r["family"]], r["dst"], r["dst_len"],
                               r["gw"], r["metric"], r["onlink"]), exist_ok=True)
        return find_by_mac(nl.links(), cfg["mac"]) or link
