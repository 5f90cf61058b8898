"""Egressbpf compiles an egress policy into one eBPF classifier for a tap's ingress.

The host kernels strongbox meets do not all have tc's ``gact`` action (this one has
``mirred`` only), but every one with ``cls_bpf`` runs a classifier in direct-action
mode, where the program's return value is the verdict: ``TC_ACT_SHOT`` drops the frame,
``TC_ACT_UNSPEC`` passes it on to the next filter (the tap's redirect to the veth). So
the whole policy is one small straight-line program, assembled here from the networks
(no compiler, no loader library: the eBPF instruction set and ``bpf(2)`` are small):

* the frame's EtherType (at offset 12: a classifier at ingress sees the MAC header);
  anything but IPv4 and IPv6 passes (ARP, so the guest finds its gateway);
* the destination address (IPv4 at 30, IPv6 at 38) against the denied networks, then
  the allowed ones, 32 bits at a time with 32-bit ALU and jumps, so no sign extension
  bends a comparison; no match in the allowed set drops.

Packet bytes are read with ``LD_ABS``, which ends the program (verdict 0: the tap's own
stack, which routes nothing) on a frame too short to hold them. :func:`verdict` runs
the program on a frame (``BPF_PROG_TEST_RUN``), for the unit tests.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import os
import struct
from collections.abc import Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

TC_ACT_UNSPEC = -1
TC_ACT_SHOT = 2
_SYS_BPF = 321  # x86_64
_BPF_PROG_LOAD = 5
_BPF_PROG_TEST_RUN = 10
_BPF_PROG_TYPE_SCHED_CLS = 3
# instruction classes, sizes, modes, operations (linux/bpf_common.h, linux/bpf.h)
_LD, _ALU, _JMP, _JMP32, _ALU64 = 0x00, 0x04, 0x05, 0x06, 0x07
_W, _H, _ABS = 0x00, 0x08, 0x20
_K, _X = 0x00, 0x08
_AND, _MOV = 0x50, 0xB0
_JA, _JEQ, _JNE, _EXIT = 0x00, 0x10, 0x50, 0x90
_ETHERTYPE, _IPV4_DST, _IPV6_DST = 12, 30, 38
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
#: Link-local IPv6 that neighbour discovery needs once any IPv6 network is allowed.
_ND = tuple(ipaddress.ip_network(n) for n in ("fe80::/10", "ff02::/16"))


class _Program:
    """Instructions with symbolic jump targets, resolved by :meth:`encode`."""

    def __init__(self) -> None:
        self.insns: list[tuple[int, int, int, int, str | None]] = []
        self.labels: dict[str, int] = {}
        self._next = 0

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def fresh(self) -> str:
        self._next += 1
        return f"_{self._next}"

    def emit(self, code: int, dst: int = 0, src: int = 0, imm: int = 0,
             target: str | None = None) -> None:
        self.insns.append((code, dst | (src << 4), imm, 0, target))

    def encode(self) -> bytes:
        out = []
        for index, (code, regs, imm, off, target) in enumerate(self.insns):
            if target is not None:
                off = self.labels[target] - index - 1
            imm = imm - (1 << 32) if imm >= 1 << 31 else imm
            out.append(struct.pack("<BBhi", code, regs, off, imm))
        return b"".join(out)

    def load_abs(self, size: int, offset: int) -> None:
        self.emit(_LD | _ABS | size, imm=offset)

    def jump_if(self, op: int, value: int, target: str) -> None:
        self.emit(_JMP32 | op | _K, dst=0, imm=value, target=target)

    def goto(self, target: str) -> None:
        self.emit(_JMP | _JA, target=target)


def _match(prog: _Program, net: IPNetwork, base: int, target: str) -> None:
    """Jump to ``target`` when the destination (loaded from ``base``) is in ``net``."""
    width = 32 if net.version == 4 else 128
    value, mask = int(net.network_address), int(net.netmask)
    miss = prog.fresh()
    for word in range(width // 32):
        shift = width - 32 * (word + 1)
        word_mask = (mask >> shift) & 0xFFFFFFFF
        if word_mask:
            prog.load_abs(_W, base + 4 * word)
            prog.emit(_ALU | _AND | _K, dst=0, imm=word_mask)
            prog.jump_if(_JNE, (value >> shift) & word_mask, miss)
    prog.goto(target)
    prog.label(miss)


def compile_policy(denied: Sequence[IPNetwork], allowed: Sequence[IPNetwork] | None) -> bytes:
    """The classifier: ``denied`` dropped; then, unless ``allowed`` is None, only it passes."""
    prog = _Program()
    prog.emit(_ALU64 | _MOV | _X, dst=6, src=1)  # LD_ABS reads the packet through r6
    prog.load_abs(_H, _ETHERTYPE)
    prog.jump_if(_JEQ, ETH_P_IP, "v4")
    prog.jump_if(_JEQ, ETH_P_IPV6, "v6")
    prog.goto("pass")
    for version, base, label in ((4, _IPV4_DST, "v4"), (6, _IPV6_DST, "v6")):
        prog.label(label)
        mine = [] if allowed is None else [n for n in allowed if n.version == version]
        tests = [(n, "drop") for n in denied if n.version == version]
        tests += [(n, "pass") for n in [*mine, *(_ND if version == 6 and mine else ())]]
        for net, target in tests:
            if net.prefixlen == 0:  # matches everything: what would follow is unreachable,
                break               # which the verifier refuses
            _match(prog, net, base, target)
        else:
            target = "pass" if allowed is None else "drop"
        prog.goto(target)
    for label, verdict in (("pass", TC_ACT_UNSPEC), ("drop", TC_ACT_SHOT)):
        prog.label(label)
        prog.emit(_ALU64 | _MOV | _K, dst=0, imm=verdict & 0xFFFFFFFF)
        prog.emit(_JMP | _EXIT)
    return prog.encode()


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    result = int(libc.syscall(_SYS_BPF, cmd, attr, len(attr)))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def load(code: bytes, name: str = "sb_egress") -> int:
    """Load ``code`` as a SCHED_CLS program; its fd (close it once tc holds it)."""
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQQIIQII16s", attr, 0, _BPF_PROG_TYPE_SCHED_CLS, len(code) // 8,
                     ctypes.addressof(insns), ctypes.addressof(license), 1, len(log),
                     ctypes.addressof(log), 0, 0, name.encode()[:15])
    try:
        return _bpf(_BPF_PROG_LOAD, attr)
    except OSError as exc:
        detail = log.value.decode(errors="replace").strip().splitlines()
        raise OSError(exc.errno, f"{exc.strerror}: {detail[-1] if detail else 'refused'}") \
            from None


def verdict(fd: int, frame: bytes) -> int:
    """The program's verdict on ``frame`` (an Ethernet frame), as a signed int."""
    data = ctypes.create_string_buffer(frame, len(frame))
    out = ctypes.create_string_buffer(len(frame) + 256)
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIIIQQI", attr, 0, fd, 0, len(frame), len(out),
                     ctypes.addressof(data), ctypes.addressof(out), 1)
    _bpf(_BPF_PROG_TEST_RUN, attr)
    retval: int = struct.unpack_from("<i", attr, 4)[0]
    return retval
