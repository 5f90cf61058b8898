"""A frame is one ttrpc message on the byte stream: a 10-byte header, then the data.

Header, all big-endian (containerd/ttrpc ``channel.go``)::

    byte  0   1   2   3   4   5   6   7     8      9
        +---------------+---------------+------+-------+
        | length (u32)  | stream id u32 | type | flags |
        +---------------+---------------+------+-------+

``length`` counts the data only. There is no magic number, version or checksum,
so once a frame is cut short nothing after it can be trusted: that is a
FramingError and the connection is closed. An oversized frame, on the other
hand, is well delimited: like the Go implementation we read its data into the
void in small chunks (never buffering MAX_MESSAGE or more) and report
MessageTooLarge for its stream only, so the connection carries on.

Unknown message types and flags are returned as they are; the server and client
decide what to ignore.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from .status import RESOURCE_EXHAUSTED, TtrpcError

HEADER = struct.Struct(">IIBB")
"""length, stream id, message type, flags."""

HEADER_SIZE = HEADER.size
"""10 bytes."""

MESSAGE_REQUEST = 1
"""Opens a stream; the data is a marshalled ``ttrpc.Request``."""
MESSAGE_RESPONSE = 2
"""Ends a stream; the data is a marshalled ``ttrpc.Response``."""
MESSAGE_DATA = 3
"""Streaming data (ttrpc 1.2+); containerd 1.6 never sends it, we never answer it."""

FLAG_REMOTE_CLOSED = 0x1
"""Request/Data: the sender will send no more data on the stream."""
FLAG_REMOTE_OPEN = 0x2
"""Request: more data follows (a streaming call)."""
FLAG_NO_DATA = 0x4
"""Data: the frame carries no data (e.g. a bare close)."""

MAX_MESSAGE = 4 << 20
"""Largest data length either side accepts (4 MiB, ttrpc's messageLengthMax)."""

MAX_STREAM_ID = 0xFFFF_FFFF

_DISCARD_CHUNK = 64 * 1024


class FramingError(Exception):
    """The byte stream broke inside a frame (e.g. EOF mid-header); close the connection."""


class MessageTooLarge(TtrpcError):
    """A frame's data length exceeds MAX_MESSAGE; only that stream fails.

    ``stream_id`` and ``message_type`` come from the skipped frame's header (0 when
    raised for an outgoing message that was never sent).
    """

    def __init__(self, length: int, stream_id: int = 0, message_type: int = 0) -> None:
        super().__init__(RESOURCE_EXHAUSTED, oversized_message(length))
        self.length = length
        self.stream_id = stream_id
        self.message_type = message_type


def oversized_message(length: int) -> str:
    """The Go implementation's wording, which containerd logs show verbatim."""
    return f"message length {length} exceed maximum message size of {MAX_MESSAGE}"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame; ``data`` is at most MAX_MESSAGE bytes."""

    stream_id: int
    message_type: int
    flags: int
    data: bytes

    def encode(self) -> bytes:
        """Header + data, ready to write."""
        return encode_frame(self.stream_id, self.message_type, self.data, self.flags)


def encode_header(length: int, stream_id: int, message_type: int, flags: int = 0) -> bytes:
    """The 10 header bytes; no limit on ``length`` (tests use it to forge big frames)."""
    return HEADER.pack(length, stream_id, message_type, flags)


def decode_header(header: bytes) -> tuple[int, int, int, int]:
    """(length, stream_id, message_type, flags) from exactly HEADER_SIZE bytes."""
    if len(header) != HEADER_SIZE:
        raise ValueError(f"a ttrpc header is {HEADER_SIZE} bytes, got {len(header)}")
    length, stream_id, message_type, flags = HEADER.unpack(header)
    return length, stream_id, message_type, flags


def encode_frame(stream_id: int, message_type: int, data: bytes, flags: int = 0) -> bytes:
    """A whole frame; raises MessageTooLarge rather than send what the peer would drop."""
    if len(data) > MAX_MESSAGE:
        raise MessageTooLarge(len(data), stream_id, message_type)
    if not 0 <= stream_id <= MAX_STREAM_ID:
        raise ValueError(f"stream id {stream_id} does not fit in 32 bits")
    return HEADER.pack(len(data), stream_id, message_type, flags) + data


async def read_frame(reader: asyncio.StreamReader) -> Frame | None:
    """The next frame, or None on a clean EOF between frames.

    Raises MessageTooLarge after skipping an oversized frame (the stream stays
    usable), FramingError when EOF cuts a frame short, and lets OSError through.
    """
    try:
        header = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise FramingError(
            f"connection closed inside a frame header ({len(exc.partial)} of {HEADER_SIZE} bytes)"
        ) from exc
    length, stream_id, message_type, flags = decode_header(header)
    if length > MAX_MESSAGE:
        await _discard(reader, length)
        raise MessageTooLarge(length, stream_id, message_type)
    try:
        data = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise FramingError(
            f"connection closed inside a frame on stream {stream_id} "
            f"({len(exc.partial)} of {length} bytes)"
        ) from exc
    return Frame(stream_id, message_type, flags, data)


async def _discard(reader: asyncio.StreamReader, length: int) -> None:
    """Read and drop ``length`` bytes, at most one chunk in memory at a time."""
    remaining = length
    while remaining:
        chunk = await reader.read(min(remaining, _DISCARD_CHUNK))
        if not chunk:
            raise FramingError(
                f"connection closed inside an oversized frame ({length - remaining} of "
                f"{length} bytes)"
            )
        remaining -= len(chunk)
