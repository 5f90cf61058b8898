"""A frame is one self-delimiting unit on the host<->agent byte stream: a 16-byte header + payload.

The host and the guest agent share exactly one ordered byte stream (a virtio-serial
port), so everything -- handshake, RPC, events and the stdio of many processes -- has
to be cut into frames that can be told apart and interleaved.  This module only knows
how to turn frames into bytes and bytes back into frames; it performs no I/O, so both
the asyncio host client and the selectors-based guest loop can drive it.

The header is fixed-size and carries the payload length up front.  That lets the
decoder refuse an oversized frame by looking at the header alone, before it has
buffered a single payload byte: the host must never let a compromised guest make it
allocate gigabytes.
"""

from __future__ import annotations

# Deliberately only `struct`: this package is imported by the guest agent, where CPython
# runs under TCG emulation and every import (dataclasses, enum, typing, collections...)
# costs milliseconds.  Hence plain __slots__ classes instead of dataclasses and enums.
import struct

MAGIC = b"SB"
"""First two bytes of every header; catches desynchronised or foreign streams early."""

VERSION = 1
"""Framing version.  Bumped only if the header layout itself changes."""

HEADER = struct.Struct(">2sBBHHII")
"""magic, version, kind, flags, reserved (always 0), channel_id, payload length."""

MAX_PAYLOAD = 1 << 20
"""Largest payload of any frame (1 MiB); bounds what a peer can make us buffer."""

MAX_DATA_CHUNK = 256 * 1024
"""Largest DATA payload a sender produces.

Big enough that moving a stream costs few frames (every frame is several
interpreted Python steps on each side, and the guest's run under emulation),
small enough that a control frame queued behind a chunk waits a few
milliseconds at most, and well under MAX_PAYLOAD.
"""

FLAG_NONE = 0
"""No flags are defined yet.  Unknown flag bits are ignored so later versions can add hints."""

_U32_MAX = 0xFFFFFFFF
_U16_MAX = 0xFFFF


class ProtocolError(Exception):
    """The peer broke the protocol; the connection cannot continue.

    Raised for anything a well-behaved peer would never send.  There is no recovery:
    once framing or flow-control state disagrees between the two ends, nothing that
    follows on the stream can be trusted, so callers must tear the connection down.
    """


class Kind:
    """What a frame carries, and therefore what its channel id means.

    channel_id is the request id for REQUEST/RESPONSE, the stream id for
    DATA/CREDIT/EOF/RESET, and 0 for HELLO/EVENT.

    A namespace of plain ints, not an enum (enum is too slow to import in the guest):
    Frame.kind is an int, compare it with ==/in, and use Kind.name_of() or KIND_NAMES
    to print it.
    """

    __slots__ = ()

    HELLO = 1
    REQUEST = 2
    RESPONSE = 3
    EVENT = 4
    DATA = 5
    CREDIT = 6
    EOF = 7
    RESET = 8

    @staticmethod
    def name_of(kind: int) -> str:
        """The kind's name for messages, e.g. "DATA"; never raises for an unknown value."""
        name = KIND_NAMES.get(kind)
        return name if name is not None else f"kind {kind!r}"


KIND_NAMES: dict[int, str] = {value: name for name, value in vars(Kind).items() if name.isupper()}
"""Every valid kind value -> its name, in wire-value order.  Membership validates a kind."""


class _Value:
    """Base of the immutable value classes here: a cheap stand-in for a frozen dataclass.

    A subclass lists its fields in __match_args__ (positional order, as a dataclass
    would) and reuses that tuple as __slots__.  Equality compares the fields of two
    instances of exactly the same class; hashing hashes them.  Instances are immutable
    by convention only: nothing stops an assignment, but no code here ever makes one.
    """

    __slots__ = ()
    __match_args__: tuple[str, ...] = ()

    def _astuple(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in self.__match_args__])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __repr__(self) -> str:
        fields = ", ".join([f"{name}={getattr(self, name)!r}" for name in self.__match_args__])
        return f"{type(self).__qualname__}({fields})"


class Frame(_Value):
    """One decoded frame.  Immutable (by convention) so layers can share it without copies."""

    __match_args__ = ("kind", "channel", "payload", "flags")
    __slots__ = __match_args__

    kind: int
    channel: int
    payload: bytes
    flags: int

    def __init__(self, kind: int, channel: int, payload: bytes, flags: int = FLAG_NONE) -> None:
        self.kind = kind
        self.channel = channel
        self.payload = payload
        self.flags = flags

    def __repr__(self) -> str:
        name = KIND_NAMES.get(self.kind)
        kind = f"Kind.{name}" if name is not None else repr(self.kind)
        return (
            f"Frame(kind={kind}, channel={self.channel!r}, payload={self.payload!r}, "
            f"flags={self.flags!r})"
        )


def encode_frame(kind: int, channel: int, payload: bytes = b"", flags: int = FLAG_NONE) -> bytes:
    """Return the wire bytes of one frame.

    Raises ValueError (a local bug, not a protocol error) for values that could not be
    represented or that the peer would be entitled to reject.
    """
    if kind not in KIND_NAMES:
        raise ValueError(f"unknown frame kind {kind!r}")
    if not 0 <= channel <= _U32_MAX:
        raise ValueError(f"channel {channel} is not a u32")
    if not 0 <= flags <= _U16_MAX:
        raise ValueError(f"flags {flags} is not a u16")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD ({MAX_PAYLOAD})")
    header = HEADER.pack(MAGIC, VERSION, kind, flags, 0, channel, len(payload))
    return header + payload


def encode_data_header(channel: int, length: int) -> bytes:
    """The header of a DATA frame whose ``length`` payload bytes the caller writes after it.

    Lets a sender write a big payload as it is (a separate iovec) instead of
    copying it behind its header; the values are the caller's own, already
    bounded by the stream layer (channel a u32, length <= its chunk size).
    """
    if length > MAX_PAYLOAD:
        raise ValueError(f"payload of {length} bytes exceeds MAX_PAYLOAD ({MAX_PAYLOAD})")
    return HEADER.pack(MAGIC, VERSION, Kind.DATA, FLAG_NONE, 0, channel, length)


class FrameDecoder:
    """Incremental decoder: feed it whatever the transport delivered, get whole frames back.

    Bytes are appended to one bytearray and consumed through a read offset; the
    consumed prefix is discarded once per feed().  This keeps a feed() that carries
    thousands of small frames linear in its size instead of quadratic.

    After the first ProtocolError the decoder is permanently broken: the byte stream
    has lost synchronisation and every later byte would be misinterpreted.
    """

    __slots__ = ("_buf", "_error", "_max_payload")

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        if not 0 <= max_payload <= _U32_MAX:
            raise ValueError(f"max_payload {max_payload} is not a u32")
        self._max_payload = max_payload
        self._buf = bytearray()
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Append data and return every frame it completed, in stream order."""
        if self._error is not None:
            raise ProtocolError(f"decoder already failed: {self._error}")
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        size = HEADER.size
        # Payloads are copied out through a memoryview: one copy per byte, where
        # bytes(buf[a:b]) would make two (the slice, then the bytes).  The view is
        # released before the buffer is resized.
        view = memoryview(buf)
        try:
            while end - pos >= size:
                length, kind, flags, channel = self._parse_header(buf, pos)
                start = pos + size
                if end - start < length:
                    break
                payload = bytes(view[start : start + length])
                frames.append(Frame(kind, channel, payload, flags))
                pos = start + length
        except ProtocolError as exc:
            self._error = exc
            view.release()
            buf.clear()
            raise
        finally:
            view.release()  # idempotent
        if pos:
            del buf[:pos]
        return frames

    def _parse_header(self, buf: bytearray, pos: int) -> tuple[int, int, int, int]:
        """Validate the header at pos; everything is checked before the payload is awaited."""
        magic, version, kind, flags, reserved, channel, length = HEADER.unpack_from(buf, pos)
        if magic != MAGIC:
            raise ProtocolError(f"bad frame magic {magic!r}")
        if version != VERSION:
            raise ProtocolError(f"unsupported frame version {version}")
        name = KIND_NAMES.get(kind)
        if name is None:
            raise ProtocolError(f"unknown frame kind {kind}")
        if reserved != 0:
            raise ProtocolError(f"reserved header field is {reserved}, expected 0")
        if length > self._max_payload:
            raise ProtocolError(
                f"{name} frame claims {length} payload bytes, limit is {self._max_payload}"
            )
        return length, kind, flags, channel
