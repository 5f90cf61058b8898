"""Tests for stream multiplexing: flow control, fairness, EOF and RESET semantics."""

from __future__ import annotations

import hashlib
import random
import struct

import pytest

from strongbox.protocol.frame import Frame, FrameDecoder, Kind, ProtocolError, encode_frame
from strongbox.protocol.streams import (
    INITIAL_WINDOW,
    StreamData,
    StreamEof,
    StreamEvent,
    StreamMux,
    StreamReset,
    StreamWritable,
)


def _frames(mux: StreamMux) -> list[Frame]:
    return FrameDecoder().feed(b"".join(mux.outgoing()))


def pump(src: StreamMux, dst: StreamMux, decoder: FrameDecoder) -> list[StreamEvent]:
    """Carry everything src wants to send through a real decoder into dst."""
    events: list[StreamEvent] = []
    for frame in decoder.feed(b"".join(src.outgoing())):
        events += dst.receive(frame)
    return events


def pair(window: int = INITIAL_WINDOW, max_chunk: int = 64 * 1024) -> tuple[StreamMux, StreamMux]:
    return StreamMux(window, max_chunk), StreamMux(window, max_chunk)


def data(sid: int, payload: bytes) -> Frame:
    return Frame(Kind.DATA, sid, payload)


def test_transfer_several_mib_interleaved_both_directions() -> None:
    rng = random.Random(1234)
    a, b = pair()
    sent = {sid: rng.randbytes((2 << 20) + sid * 777) for sid in (1, 2, 3, 4)}
    host_to_guest, guest_to_host = (1, 2, 3), (4,)
    for sid in host_to_guest:
        a.open(sid, readable=False)
        b.open(sid, writable=False)
    for sid in guest_to_host:
        a.open(sid, writable=False)
        b.open(sid, readable=False)
    for sid, blob in sent.items():
        writer = a if sid in host_to_guest else b
        pos = 0
        while pos < len(blob):  # uneven writes exercise chunk joining and splitting
            step = rng.randint(1, 300_000)
            writer.write(sid, blob[pos : pos + step])
            pos += step
        writer.close_write(sid)

    digests = {sid: hashlib.sha256() for sid in sent}
    eofs: list[int] = []
    ab, ba = FrameDecoder(), FrameDecoder()
    for _ in range(1000):
        if not (a.has_outgoing() or b.has_outgoing()):
            break
        for receiver, events in ((b, pump(a, b, ab)), (a, pump(b, a, ba))):
            for event in events:
                if isinstance(event, StreamData):
                    digests[event.stream_id].update(event.data)
                    receiver.consumed(event.stream_id, len(event.data))
                elif isinstance(event, StreamEof):
                    eofs.append(event.stream_id)
    assert sorted(eofs) == [1, 2, 3, 4]
    for sid, blob in sent.items():
        assert digests[sid].digest() == hashlib.sha256(blob).digest()
        assert a.is_finished(sid) and b.is_finished(sid)


def test_window_blocks_sending_until_consumed_returns_credit() -> None:
    a, b = pair(window=1000, max_chunk=300)
    a.open(1)
    b.open(1)
    a.write(1, b"x" * 5000)
    frames = _frames(a)
    assert [len(f.payload) for f in frames] == [300, 300, 300, 100]
    assert a.send_window(1) == 0 and a.queued(1) == 4000
    assert not a.has_outgoing() and a.outgoing() == []

    for frame in frames:
        b.receive(frame)
    assert not b.has_outgoing()  # received but not consumed: no credit
    b.consumed(1, 499)
    assert not b.has_outgoing()  # below half a window: still batched
    b.consumed(1, 1)
    (credit,) = _frames(b)
    assert credit.kind == Kind.CREDIT and struct.unpack(">I", credit.payload) == (500,)
    assert a.receive(credit) == [StreamWritable(1)]
    assert a.send_window(1) == 500
    assert sum(len(f.payload) for f in _frames(a)) == 500


def test_flush_credit_grants_small_amounts() -> None:
    a, b = pair(window=1000)
    a.open(1)
    b.open(1)
    a.write(1, b"abc")
    b.receive(_frames(a)[0])
    b.consumed(1, 3)
    assert not b.has_outgoing()
    b.flush_credit(1)
    (credit,) = _frames(b)
    assert a.receive(credit) == []  # the window never hit zero
    assert a.send_window(1) == 1000


def test_round_robin_interleaves_busy_streams() -> None:
    a, _ = pair(max_chunk=1024)
    for sid in (1, 2, 3):
        a.open(sid)
        a.write(sid, bytes([sid]) * 10_000)
    order = [f.channel for f in _frames(a) if f.kind == Kind.DATA]
    assert len(set(order[:3])) == 3
    assert order[:9] == [1, 2, 3] * 3


def test_small_writes_are_coalesced_up_to_max_chunk() -> None:
    a, _ = pair(max_chunk=100)
    a.open(1)
    for _ in range(25):
        a.write(1, b"0123456789")
    assert [len(f.payload) for f in _frames(a)] == [100, 100, 50]
    assert a.queued(1) == 0


def test_eof_follows_data_and_is_delivered_once() -> None:
    a, b = pair(max_chunk=4)
    a.open(1)
    b.open(1)
    a.write(1, b"hello world")
    a.close_write(1)
    a.close_write(1)  # idempotent
    events = pump(a, b, FrameDecoder())
    assert events[-1] == StreamEof(1)
    assert b"".join(e.data for e in events if isinstance(e, StreamData)) == b"hello world"
    assert events.count(StreamEof(1)) == 1
    assert a.outgoing() == [] and not a.has_outgoing()


def test_eof_waits_for_data_blocked_by_window() -> None:
    a, b = pair(window=10)
    a.open(1)
    b.open(1)
    a.write(1, b"x" * 15)
    a.close_write(1)
    assert [f.kind for f in _frames(a)] == [Kind.DATA]
    a.receive(Frame(Kind.CREDIT, 1, struct.pack(">I", 10)))
    assert [f.kind for f in _frames(a)] == [Kind.DATA, Kind.EOF]


def test_is_finished_requires_both_directions() -> None:
    a, _ = pair()
    a.open(1)
    a.close_write(1)
    a.outgoing()
    assert not a.is_finished(1)
    a.receive(Frame(Kind.EOF, 1, b""))
    assert a.is_finished(1)
    a.open(2, writable=False)
    assert not a.is_finished(2)
    a.receive(Frame(Kind.EOF, 2, b""))
    assert a.is_finished(2)


@pytest.mark.parametrize(
    ("frames", "match"),
    [
        ([Frame(Kind.EOF, 1, b""), Frame(Kind.EOF, 1, b"")], "duplicate EOF"),
        ([Frame(Kind.EOF, 1, b""), data(1, b"late")], "after EOF"),
        ([data(1, b"x" * 60), data(1, b"x" * 41)], "exceeded its window"),
        ([data(1, b"x" * 101)], "exceeded its window"),
        ([Frame(Kind.EOF, 1, b"junk")], "payload"),
        ([Frame(Kind.RESET, 1, b""), data(1, b"x")], "after EOF or RESET"),
        ([Frame(Kind.CREDIT, 1, b"\x00\x01")], "4 bytes"),
        ([Frame(Kind.CREDIT, 1, struct.pack(">I", 0))], "CREDIT of 0"),
        ([Frame(Kind.CREDIT, 1, struct.pack(">I", 2**31 - 100))], "exceed"),
        ([data(2, b"x")], "do not read"),
        ([Frame(Kind.CREDIT, 3, struct.pack(">I", 1))], "do not write"),
        ([data(0, b"x")], "stream 0"),
    ],
)
def test_protocol_violations(frames: list[Frame], match: str) -> None:
    mux = StreamMux(window=100)
    mux.open(1)
    mux.open(2, readable=False)
    mux.open(3, writable=False)
    with pytest.raises(ProtocolError, match=match):
        for frame in frames:
            mux.receive(frame)


def test_peer_reset_drops_queued_data() -> None:
    a, b = pair(window=100)
    a.open(1)
    b.open(1)
    a.write(1, b"x" * 1000)
    a.close_write(1)
    pump(a, b, FrameDecoder())
    assert a.queued(1) == 900
    b.reset(1)
    assert b.streams() == []
    assert pump(b, a, FrameDecoder()) == [StreamReset(1)]
    assert a.queued(1) == 0 and not a.has_outgoing()
    assert a.is_finished(1)
    a.write(1, b"discarded")  # races with the reset are harmless
    assert a.queued(1) == 0
    assert a.receive(Frame(Kind.RESET, 1, b"")) == []


def test_local_reset_sends_only_reset_and_forgets() -> None:
    a, _ = pair()
    a.open(1)
    a.write(1, b"pending")
    a.close_write(1)
    assert a.has_outgoing()
    a.reset(1)
    assert [(f.kind, f.channel) for f in _frames(a)] == [(Kind.RESET, 1)]
    assert a.streams() == []
    with pytest.raises(KeyError):
        a.reset(1)


def test_data_for_unknown_or_closed_stream_is_dropped_and_not_credited() -> None:
    mux = StreamMux(window=100)
    assert mux.receive(data(99, b"x" * 100)) == []
    mux.open(1)
    mux.receive(data(1, b"abc"))
    mux.close(1)
    mux.close(1)  # idempotent
    assert mux.receive(data(1, b"x" * 100)) == []
    assert mux.receive(Frame(Kind.EOF, 1, b"")) == []
    assert mux.receive(Frame(Kind.CREDIT, 7, struct.pack(">I", 5))) == []
    mux.consumed(1, 3)  # draining a buffer after close is fine
    assert not mux.has_outgoing()


def test_no_credit_once_peer_finished_sending() -> None:
    mux = StreamMux(window=100)
    mux.open(1)
    mux.receive(data(1, b"x" * 80))
    mux.receive(Frame(Kind.EOF, 1, b""))
    mux.consumed(1, 80)
    mux.flush_credit(1)
    assert not mux.has_outgoing()


def test_local_misuse_raises() -> None:
    mux = StreamMux()
    mux.open(1)
    mux.open(2, writable=False)
    with pytest.raises(ValueError):
        mux.open(1)
    with pytest.raises(ValueError):
        mux.open(0)
    with pytest.raises(ValueError):
        mux.open(5, readable=False, writable=False)
    with pytest.raises(KeyError):
        mux.write(9, b"x")
    with pytest.raises(ValueError):
        mux.write(2, b"x")
    mux.close_write(1)
    with pytest.raises(ValueError):
        mux.write(1, b"x")
    with pytest.raises(ValueError):
        mux.consumed(1, 1)  # nothing was received
    with pytest.raises(ValueError):
        mux.receive(Frame(Kind.HELLO, 0, b"{}"))


def test_writable_event_only_when_window_reopens() -> None:
    a, _ = pair(window=10)
    a.open(1)
    a.write(1, b"x" * 10)
    a.outgoing()
    credit = Frame(Kind.CREDIT, 1, struct.pack(">I", 4))
    assert a.receive(credit) == [StreamWritable(1)]
    assert a.receive(credit) == []
    assert a.send_window(1) == 8


def test_outgoing_wire_is_decodable_and_credit_goes_first() -> None:
    a, b = pair(window=100)
    a.open(1)
    b.open(1)
    a.write(1, b"y" * 100)
    b.receive(_frames(a)[0])
    b.consumed(1, 100)
    b.write(1, b"z")
    wire = b"".join(b.outgoing())
    assert [f.kind for f in FrameDecoder().feed(wire)] == [Kind.CREDIT, Kind.DATA]
    assert encode_frame(Kind.DATA, 1, b"z") in wire


def test_many_small_writes_drain_in_order_across_partial_chunks() -> None:
    a, b = pair(window=1 << 20, max_chunk=7)
    a.open(1)
    b.open(1)
    expected = b"".join(bytes([i % 251]) * (i % 5 + 1) for i in range(3000))
    pos = 0
    for i in range(3000):
        n = i % 5 + 1
        a.write(1, expected[pos : pos + n])
        pos += n
    a.close_write(1)
    events = pump(a, b, FrameDecoder())
    assert b"".join(e.data for e in events if isinstance(e, StreamData)) == expected
    assert events[-1] == StreamEof(1)
    assert a.queued(1) == 0 and not a.has_outgoing()


def test_stream_events_have_value_semantics() -> None:
    assert StreamEof(1) == StreamEof(stream_id=1)
    assert StreamEof(1) != StreamReset(1)
    assert hash(StreamData(1, b"x")) == hash(StreamData(1, b"x"))
    assert repr(StreamData(1, b"x")) == "StreamData(stream_id=1, data=b'x')"
    assert isinstance(StreamReset(1), StreamEof | StreamReset)


def test_outgoing_parts_are_the_same_bytes_with_payloads_uncopied() -> None:
    # The guest writes DATA frames as header + payload iovecs: the bytes on the wire
    # must be exactly what outgoing() would have sent, and a whole queued chunk must
    # go out as the very object that was written (no copy behind its header).
    chunks = [bytes([n]) * 70_000 for n in range(5)]
    expected_mux, split_mux = pair(max_chunk=70_000)
    for mux in (expected_mux, split_mux):
        mux.open(1, readable=False)
        mux.open(2, readable=False)
        for chunk in chunks:
            mux.write(1, chunk)
        mux.write(2, b"small")
        mux.close_write(2)
    parts = split_mux.outgoing_parts()
    assert b"".join(parts) == b"".join(expected_mux.outgoing())
    assert any(part is chunks[0] for part in parts)
    frames = FrameDecoder().feed(memoryview(b"".join(parts)))
    assert [f.kind for f in frames if f.channel == 2] == [Kind.DATA, Kind.EOF]
    assert b"".join(f.payload for f in frames if f.channel == 1) == b"".join(chunks)


def test_default_window_keeps_several_full_chunks_in_flight() -> None:
    # With credit returned each half window, a sender must still hold credit for
    # at least one more full chunk while the first credit is on its way back.
    from strongbox.protocol.frame import MAX_DATA_CHUNK, MAX_PAYLOAD

    assert INITIAL_WINDOW // 2 >= 2 * MAX_DATA_CHUNK
    assert MAX_DATA_CHUNK <= MAX_PAYLOAD
