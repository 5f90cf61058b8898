"""Tests for ttrpc framing: header layout, round trips, truncation and oversized frames."""

from __future__ import annotations

import asyncio
import socket
import tracemalloc

import pytest

from strongbox.shim.ttrpc.frame import (
    FLAG_NO_DATA,
    FLAG_REMOTE_CLOSED,
    FLAG_REMOTE_OPEN,
    HEADER_SIZE,
    MAX_MESSAGE,
    MESSAGE_DATA,
    MESSAGE_REQUEST,
    MESSAGE_RESPONSE,
    Frame,
    FramingError,
    MessageTooLarge,
    decode_header,
    encode_frame,
    encode_header,
    read_frame,
)
from strongbox.shim.ttrpc.status import RESOURCE_EXHAUSTED
from tests.unit.shim.ttrpc.harness import run


async def _read_all(data: bytes) -> list[Frame | Exception]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out: list[Frame | Exception] = []
    while True:
        try:
            frame = await read_frame(reader)
        except (FramingError, MessageTooLarge) as exc:
            out.append(exc)
            if isinstance(exc, FramingError):
                return out
            continue
        if frame is None:
            return out
        out.append(frame)


def test_constants_match_the_protocol() -> None:
    assert HEADER_SIZE == 10
    assert (MESSAGE_REQUEST, MESSAGE_RESPONSE, MESSAGE_DATA) == (1, 2, 3)
    assert (FLAG_REMOTE_CLOSED, FLAG_REMOTE_OPEN, FLAG_NO_DATA) == (1, 2, 4)
    assert MAX_MESSAGE == 4 * 1024 * 1024


def test_header_is_big_endian_length_stream_type_flags() -> None:
    wire = encode_frame(0x01020304, MESSAGE_RESPONSE, b"abc", FLAG_REMOTE_CLOSED)
    assert wire == b"\x00\x00\x00\x03" b"\x01\x02\x03\x04" b"\x02" b"\x01" b"abc"
    assert decode_header(wire[:HEADER_SIZE]) == (3, 0x01020304, MESSAGE_RESPONSE, 1)
    assert encode_header(5 << 20, 7, MESSAGE_REQUEST) == b"\x00\x50\x00\x00\x00\x00\x00\x07\x01\x00"


def test_decode_header_wants_exactly_ten_bytes() -> None:
    with pytest.raises(ValueError, match="10 bytes"):
        decode_header(b"\x00" * 9)


@pytest.mark.parametrize("data", [b"", b"x", bytes(range(256)) * 40])
@pytest.mark.parametrize("flags", [0, FLAG_REMOTE_CLOSED | FLAG_NO_DATA])
def test_round_trip(data: bytes, flags: int) -> None:
    frames = [Frame(1, MESSAGE_REQUEST, flags, data), Frame(3, MESSAGE_DATA, 0, b"next")]
    wire = b"".join(f.encode() for f in frames)
    assert run(_read_all(wire)) == frames


def test_clean_eof_between_frames_is_none() -> None:
    assert run(_read_all(b"")) == []


def test_eof_inside_the_header_is_a_framing_error() -> None:
    [error] = run(_read_all(b"\x00\x00\x00"))
    assert isinstance(error, FramingError)
    assert "3 of 10 bytes" in str(error)


def test_eof_inside_the_data_is_a_framing_error() -> None:
    wire = encode_frame(5, MESSAGE_REQUEST, b"0123456789")[:-4]
    [error] = run(_read_all(wire))
    assert isinstance(error, FramingError)
    assert "stream 5 (6 of 10 bytes)" in str(error)


def test_largest_message_is_accepted() -> None:
    data = b"\xab" * MAX_MESSAGE
    [frame] = run(_read_all(encode_frame(1, MESSAGE_REQUEST, data)))
    assert isinstance(frame, Frame)
    assert frame.data == data


def test_sending_more_than_the_maximum_is_refused() -> None:
    with pytest.raises(MessageTooLarge) as info:
        encode_frame(9, MESSAGE_RESPONSE, b"\x00" * (MAX_MESSAGE + 1))
    assert info.value.code == RESOURCE_EXHAUSTED
    assert info.value.stream_id == 9


def test_oversized_frame_is_skipped_and_reported_for_its_stream() -> None:
    length = 5 << 20
    wire = encode_header(length, 7, MESSAGE_REQUEST) + b"\x00" * length
    wire += encode_frame(9, MESSAGE_REQUEST, b"after")
    error, after = run(_read_all(wire))
    assert isinstance(error, MessageTooLarge)
    assert (error.code, error.stream_id, error.message_type, error.length) == (
        RESOURCE_EXHAUSTED, 7, MESSAGE_REQUEST, length)
    assert str(error) == "message length 5242880 exceed maximum message size of 4194304"
    assert after == Frame(9, MESSAGE_REQUEST, 0, b"after")


def test_oversized_frame_cut_short_is_a_framing_error() -> None:
    wire = encode_header(5 << 20, 7, MESSAGE_REQUEST) + b"\x00" * 1000
    [error] = run(_read_all(wire))
    assert isinstance(error, FramingError)


def test_oversized_frame_is_discarded_without_buffering_it() -> None:
    """Through a real socket: peak Python memory stays far below the frame's size."""
    length = 6 << 20
    chunk = b"\x00" * (64 * 1024)

    async def scenario() -> tuple[BaseException | None, int]:
        a, b = socket.socketpair()
        reader, _ = await asyncio.open_unix_connection(sock=a)
        _, writer = await asyncio.open_unix_connection(sock=b)

        async def write() -> None:
            writer.write(encode_header(length, 3, MESSAGE_REQUEST))
            for _ in range(length // len(chunk)):
                writer.write(chunk)
                await writer.drain()
            writer.write(encode_frame(5, MESSAGE_REQUEST, b"ok"))
            await writer.drain()

        tracemalloc.start()
        try:
            sender = asyncio.create_task(write())
            error: BaseException | None = None
            try:
                await read_frame(reader)
            except MessageTooLarge as exc:
                error = exc
            assert await read_frame(reader) == Frame(5, MESSAGE_REQUEST, 0, b"ok")
            await sender
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            writer.close()
            a.close()
        return error, peak

    error, peak = run(scenario())
    assert isinstance(error, MessageTooLarge)
    assert peak < 1 << 20, f"peak {peak} bytes while discarding a {length}-byte frame"
