"""Guest network configuration of one interface: validate the host's config, apply it.

The host mirrors each interface of the sandbox's network namespace onto a
virtio-net NIC of the VM (Kata's ``tcfilter`` model). :func:`validate` checks
one interface's configuration; :func:`setup` gives a link the configuration's
name, MAC, MTU, UP flag, addresses and routes; :func:`configure` finds the NIC
by MAC and sets it up. Which NIC serves which host interface, and hiding the
NICs no interface uses, is :mod:`.nicslots`' job; the rtnetlink messages are
:mod:`.netlink`'s.

Why addresses are parsed with ``_socket.inet_pton`` rather than
``ipaddress``: the agent is PID 1 under emulation, where each imported module
costs milliseconds, and ``ipaddress`` pulls in ``functools`` and
``collections``; ``inet_pton`` is strict (no IPv4 shorthand, no leading zeros)
and already loaded with the netlink socket. Nothing here is imported at boot
either: the verb that configures the network imports it.

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

from strongbox.agent.netlink import (
    AF_INET,
    AF_INET6,
    EEXIST,
    NLM_F_CREATE,
    NLM_F_EXCL,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    Link,
    Netlink,
    addr_request,
    find_by_mac,
    link_request,
    route_request,
)

TYPE_CHECKING = False  # typing costs milliseconds of guest boot; mypy still reads the block
if TYPE_CHECKING:
    from typing import Any

_IFNAMSIZ = 16
_FAMILIES = {4: AF_INET, 6: AF_INET6}
_BITS = {4: 32, 6: 128}


class NetconfigError(Exception):
    """Configuring a guest interface failed; the message names the interface and the step."""


class InvalidNetconfig(NetconfigError):
    """The configuration the host sent is malformed; the message names the field."""


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


def check_mac(text: str, where: str) -> str:
    """The MAC in lower case; raises InvalidNetconfig unless it is six hex octets."""
    mac = text.lower()
    octets = mac.split(":")
    if len(octets) != 6 or any(len(o) != 2 or o.strip("0123456789abcdef") for o in octets):
        raise InvalidNetconfig(f"{where}: expected six hex octets like aa:bb:cc:dd:ee:ff, "
                               f"got {text!r}")
    return mac


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
    mac = check_mac(_field(cfg, "mac", str, ""), "mac")
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


def step(nl: Netlink, label: str, what: str, kind: int, flags: int, body: bytes,
         exist_ok: bool = False) -> None:
    """One request; a failure is a one-line NetconfigError ``label: what: reason``.

    ``exist_ok``: EEXIST (an address or route already there) is what was asked for.
    """
    try:
        nl.request(kind, flags, body)
    except OSError as err:
        if not (exist_ok and err.errno == EEXIST):
            raise NetconfigError(f"{label}: {what}: {err.strerror}") from None


def setup(nl: Netlink, link: Link, cfg: dict[str, Any]) -> Link:
    """Give ``link`` (in ``nl``'s namespace) the validated ``cfg``; idempotent.

    Order matters to the kernel: a link must be down to be renamed or to take
    a new MAC, addresses come before routes (their subnets make gateways
    reachable) and device routes before gateway routes. Only what differs is
    changed, apart from the UP flag, addresses and routes, which are asked for
    every time (EEXIST is success), so re-applying changes nothing.
    """
    name, index = cfg["name"], link.index
    rename, remac = link.name != name, link.mac != cfg["mac"]
    if (rename or remac) and link.up:
        step(nl, name, f"setting {link.name} down to "
             f"{'rename it' if rename else 'change its MAC address'}", RTM_NEWLINK, 0,
             link_request(index, up=False))
    if rename:
        step(nl, name, f"renaming {link.name} to {name}", RTM_NEWLINK, 0,
             link_request(index, name=name))
    if remac:
        step(nl, name, f"setting MAC address {cfg['mac']}", RTM_NEWLINK, 0,
             link_request(index, mac=cfg["mac"]))
    if cfg["mtu"] and cfg["mtu"] != link.mtu:
        step(nl, name, f"setting MTU {cfg['mtu']}", RTM_NEWLINK, 0,
             link_request(index, mtu=cfg["mtu"]))
    step(nl, name, "setting the link up", RTM_NEWLINK, 0, link_request(index, up=True))
    for a in cfg["addresses"]:
        step(nl, name, f"adding address {a['address']}/{a['prefix']}", RTM_NEWADDR,
             NLM_F_CREATE | NLM_F_EXCL,
             addr_request(index, _FAMILIES[a["family"]], a["packed"], a["prefix"]),
             exist_ok=True)
    for r in cfg["routes"]:
        step(nl, name, f"adding route {describe_route(r)}", RTM_NEWROUTE,
             NLM_F_CREATE | NLM_F_EXCL,
             route_request(index, _FAMILIES[r["family"]], r["dst"], r["dst_len"], r["gw"],
                           r["metric"], r["onlink"]), exist_ok=True)
    return next((now for now in nl.links() if now.index == index), link)


def configure(config: Any) -> Link:
    """Validate one interface's configuration and apply it to the NIC with its MAC."""
    cfg = validate(config)
    with Netlink() as nl:
        link = find_by_mac(nl.links(), cfg["mac"])
        if link is None:
            raise NetconfigError(f"{cfg['name']}: no interface has MAC address {cfg['mac']}")
        return setup(nl, link, cfg)
