"""Tests for the wire framing: round trips, incremental decoding and refusal of bad headers."""

from __future__ import annotations

import pytest

from strongbox.protocol.frame import (
    HEADER,
    KIND_NAMES,
    MAGIC,
    MAX_PAYLOAD,
    VERSION,
    Frame,
    FrameDecoder,
    Kind,
    ProtocolError,
    encode_frame,
)


def _header(
    *,
    magic: bytes = MAGIC,
    version: int = VERSION,
    kind: int = Kind.DATA,
    flags: int = 0,
    reserved: int = 0,
    channel: int = 1,
    length: int = 0,
) -> bytes:
    return HEADER.pack(magic, version, kind, flags, reserved, channel, length)


def test_header_is_16_bytes() -> None:
    assert HEADER.size == 16


@pytest.mark.parametrize("kind", list(KIND_NAMES))
def test_round_trip_every_kind(kind: int) -> None:
    wire = encode_frame(kind, 7, b"payload")
    assert wire[:2] == MAGIC
    assert FrameDecoder().feed(wire) == [Frame(kind, 7, b"payload")]


@pytest.mark.parametrize("size", [0, 1, MAX_PAYLOAD])
def test_round_trip_payload_sizes(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    decoder = FrameDecoder()
    (frame,) = decoder.feed(encode_frame(Kind.DATA, 0xFFFFFFFF, payload))
    assert frame.payload == payload
    assert frame.channel == 0xFFFFFFFF
    assert decoder.buffered == 0


def test_byte_at_a_time() -> None:
    frames = [Frame(Kind.REQUEST, 1, b"abc"), Frame(Kind.EOF, 2, b""), Frame(Kind.DATA, 3, b"z")]
    wire = b"".join(encode_frame(f.kind, f.channel, f.payload) for f in frames)
    decoder = FrameDecoder()
    got: list[Frame] = []
    for i in range(len(wire)):
        got += decoder.feed(wire[i : i + 1])
    assert got == frames
    assert decoder.buffered == 0


def test_many_frames_in_one_feed_with_partial_tail() -> None:
    wire = b"".join(encode_frame(Kind.DATA, i + 1, str(i).encode()) for i in range(20_000))
    tail = encode_frame(Kind.EOF, 9)
    decoder = FrameDecoder()
    frames = decoder.feed(wire + tail[:5])
    assert len(frames) == 20_000
    assert frames[-1] == Frame(Kind.DATA, 20_000, b"19999")
    assert decoder.buffered == 5
    assert decoder.feed(tail[5:]) == [Frame(Kind.EOF, 9, b"")]


def test_unknown_flags_are_ignored_but_kept() -> None:
    (frame,) = FrameDecoder().feed(_header(flags=0x8001, length=0))
    assert frame.flags == 0x8001


def test_oversize_refused_from_header_alone() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError, match="limit"):
        decoder.feed(_header(length=MAX_PAYLOAD + 1))


def test_custom_max_payload() -> None:
    decoder = FrameDecoder(max_payload=10)
    assert decoder.feed(encode_frame(Kind.DATA, 1, b"x" * 10))
    with pytest.raises(ProtocolError):
        decoder.feed(_header(length=11))


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (_header(magic=b"XX"), "magic"),
        (_header(version=VERSION + 1), "version"),
        (_header(kind=0), "kind"),
        (_header(kind=99), "kind"),
        (_header(reserved=1), "reserved"),
    ],
)
def test_bad_headers(header: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        FrameDecoder().feed(header)


def test_decoder_stays_broken_after_error() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(encode_frame(Kind.DATA, 1, b"ok") + _header(magic=b"no"))
    with pytest.raises(ProtocolError):
        decoder.feed(encode_frame(Kind.DATA, 1, b"ok"))
    assert decoder.buffered == 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((Kind.DATA, -1), "channel"),
        ((Kind.DATA, 1 << 32), "channel"),
        ((Kind.DATA, 1, b"x" * (MAX_PAYLOAD + 1)), "MAX_PAYLOAD"),
        ((Kind.DATA, 1, b"", 1 << 16), "flags"),
        ((42, 1), "kind"),
    ],
)
def test_encode_rejects_unrepresentable(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_frame(*args)


def test_kind_is_plain_ints_with_names() -> None:
    assert list(KIND_NAMES.items()) == [
        (1, "HELLO"),
        (2, "REQUEST"),
        (3, "RESPONSE"),
        (4, "EVENT"),
        (5, "DATA"),
        (6, "CREDIT"),
        (7, "EOF"),
        (8, "RESET"),
    ]
    assert type(Kind.DATA) is int
    assert Kind.name_of(Kind.CREDIT) == "CREDIT"
    assert Kind.name_of(42) == "kind 42"
    (frame,) = FrameDecoder().feed(encode_frame(Kind.EOF, 3))
    assert type(frame.kind) is int
    assert frame.kind in (Kind.DATA, Kind.EOF)


def test_frame_has_value_semantics() -> None:
    frame = Frame(Kind.DATA, 1, b"x")
    assert frame == Frame(kind=Kind.DATA, channel=1, payload=b"x", flags=0)
    assert frame != Frame(Kind.DATA, 1, b"x", 1)
    assert frame != (Kind.DATA, 1, b"x", 0)
    assert hash(frame) == hash(Frame(Kind.DATA, 1, b"x"))
    assert len({frame, Frame(Kind.DATA, 1, b"x"), Frame(Kind.EOF, 1, b"")}) == 2
    assert repr(frame) == "Frame(kind=Kind.DATA, channel=1, payload=b'x', flags=0)"
    assert repr(Frame(42, 0, b"")) == "Frame(kind=42, channel=0, payload=b'', flags=0)"
    assert not hasattr(frame, "__dict__")
    match frame:
        case Frame(Kind.DATA, channel, payload):
            assert (channel, payload) == (1, b"x")
        case _:
            pytest.fail("Frame does not support positional match patterns")
