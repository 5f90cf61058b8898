"""A stream is one direction-aware byte pipe (e.g. a process's stdout) multiplexed on the channel.

Many processes' stdin/stdout/stderr share the single host<->agent byte stream.  Without
flow control, one process writing gigabytes to a reader that is not reading would fill
memory on the receiving side, or block the shared channel and starve every other stream
and the RPC traffic.  So each stream direction carries credit:

* the sender may have at most ``window`` bytes of DATA that the receiver has not yet
  given back as credit;
* the receiver gives credit back (a CREDIT frame, payload a u32 increment) only after the
  application has *consumed* the bytes, not when they merely arrived, so a slow reader
  really does slow down the writer;
* credit is batched: a CREDIT frame is scheduled once half a window has been consumed,
  so steady traffic costs one small frame per half window.

Stream ids are allocated by the host (the side that creates processes) and announced via
an RPC, so both ends open the id before data flows.  Both ends must use the same window.

StreamMux is sans-IO: receive() takes decoded frames and returns events; outgoing()
returns encoded frames to write.  The owner decides when to read, write and poll.
"""

from __future__ import annotations

import struct

from .frame import (
    MAX_DATA_CHUNK,
    Frame,
    Kind,
    ProtocolError,
    encode_data_header,
    encode_frame,
)
from .streamevents import StreamData, StreamEof, StreamEvent, StreamReset, StreamWritable

__all__ = ["INITIAL_WINDOW", "MAX_WINDOW", "StreamData", "StreamEof", "StreamEvent",
           "StreamMux", "StreamReset", "StreamWritable"]

INITIAL_WINDOW = 1024 * 1024
"""Bytes a sender may have unacknowledged per stream and direction.

Four full chunks: with credit returned every half window, the sender still
has two chunks it may send while the credit for the first ones is on its
way back, so a busy stream never stalls waiting for it.
"""

MAX_WINDOW = 2**31 - 1
"""Upper bound of any send window; more credit than this means the peer's accounting is broken."""

_CREDIT = struct.Struct(">I")
_MAX_STREAM_ID = 0xFFFFFFFF




class _Stream:
    """Per-stream flow-control state for both directions.

    Queued chunks live in a list consumed from queue[head_index] on (a deque would cost
    a `collections` import in the guest).  Sent chunks are replaced by b"" so their
    memory is freed at once, and the dead prefix is dropped once it is at least half of
    the list, which keeps take() amortised O(1) per chunk.
    """

    __slots__ = (
        "eof_received",
        "eof_sent",
        "head_index",
        "head_offset",
        "queue",
        "queued",
        "readable",
        "recv_window",
        "reset_by_peer",
        "send_window",
        "unconsumed",
        "uncredited",
        "writable",
        "write_closed",
    )

    def __init__(self, readable: bool, writable: bool, send_window: int, recv_window: int) -> None:
        self.readable = readable
        self.writable = writable
        self.send_window = send_window
        self.recv_window = recv_window  # bytes the peer may still send before it needs credit
        self.queue: list[bytes] = []
        self.head_index = 0  # queue[:head_index] was sent (and replaced by b"")
        self.head_offset = 0  # bytes of queue[head_index] already sent; avoids re-slicing
        self.queued = 0
        # A direction we never use counts as already finished.
        self.write_closed = self.eof_sent = not writable
        self.unconsumed = 0  # received, not yet consumed by the application
        self.uncredited = 0  # consumed, credit not yet scheduled
        self.eof_received = not readable
        self.reset_by_peer = False

    def __repr__(self) -> str:
        return (
            f"_Stream(readable={self.readable}, writable={self.writable}, "
            f"send_window={self.send_window}, recv_window={self.recv_window}, "
            f"queued={self.queued}, write_closed={self.write_closed}, "
            f"eof_sent={self.eof_sent}, eof_received={self.eof_received}, "
            f"reset_by_peer={self.reset_by_peer})"
        )

    def wants_send(self) -> bool:
        """True if outgoing() could emit a DATA or EOF frame for this stream now."""
        if self.queued:
            return self.send_window > 0
        return self.write_closed and not self.eof_sent

    def take(self, n: int) -> bytes:
        """Remove and return the first n queued bytes (n <= queued)."""
        parts: list[bytes] = []
        need = n
        queue = self.queue
        index = self.head_index
        offset = self.head_offset
        while need:
            head = queue[index]
            available = len(head) - offset
            if available <= need:
                parts.append(head[offset:] if offset else head)
                queue[index] = b""  # release the chunk now, not at the next compaction
                index += 1
                offset = 0
                need -= available
            else:
                parts.append(head[offset : offset + need])
                offset += need
                need = 0
        if index == len(queue):
            queue.clear()
            index = 0
        elif index * 2 >= len(queue):
            del queue[:index]
            index = 0
        self.head_index = index
        self.head_offset = offset
        self.queued -= n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def drop_queue(self) -> None:
        """Discard everything queued for sending."""
        self.queue.clear()
        self.queued = self.head_index = self.head_offset = 0


class StreamMux:
    """Flow-controlled multiplexer for all streams of one connection (one per connection)."""

    def __init__(self, window: int = INITIAL_WINDOW, max_chunk: int = MAX_DATA_CHUNK) -> None:
        if not 0 < window <= MAX_WINDOW:
            raise ValueError(f"window must be in 1..{MAX_WINDOW}")
        if max_chunk <= 0:
            raise ValueError("max_chunk must be positive")
        self._window = window
        self._max_chunk = max_chunk
        self._credit_threshold = max(1, window // 2)
        self._streams: dict[int, _Stream] = {}
        # Insertion-ordered set of streams with data or EOF to send; order is the round robin.
        self._sending: dict[int, None] = {}
        self._credits: dict[int, int] = {}
        self._resets: list[int] = []

    def open(self, stream_id: int, *, readable: bool = True, writable: bool = True) -> None:
        """Register a stream; readable = we receive on it, writable = we send on it."""
        if not 0 < stream_id <= _MAX_STREAM_ID:
            raise ValueError(f"stream id {stream_id} is not a non-zero u32")
        if stream_id in self._streams:
            raise ValueError(f"stream {stream_id} is already open")
        if not (readable or writable):
            raise ValueError("a stream must be readable, writable or both")
        self._streams[stream_id] = _Stream(readable, writable, self._window, self._window)

    def close(self, stream_id: int) -> None:
        """Forget a stream without telling the peer (both directions are done). Idempotent."""
        self._forget(stream_id)

    def reset(self, stream_id: int) -> None:
        """Abandon a stream: drop queued data, tell the peer with RESET, forget it."""
        if stream_id not in self._streams:
            raise KeyError(stream_id)
        self._forget(stream_id)
        self._resets.append(stream_id)

    def streams(self) -> list[int]:
        return list(self._streams)

    def is_finished(self, stream_id: int) -> bool:
        """True once every direction that was opened has seen its EOF (or the peer reset)."""
        st = self._streams[stream_id]
        return st.reset_by_peer or (st.eof_sent and st.eof_received)

    def write(self, stream_id: int, data: bytes) -> None:
        """Queue bytes for the peer.  The queue is unbounded; watch queued() for back-pressure.

        Bytes written after the peer reset the stream are discarded silently: the reset
        can race with any write, and the application learns of it from StreamReset.
        """
        st = self._streams[stream_id]
        if st.write_closed and not st.reset_by_peer:
            raise ValueError(f"stream {stream_id} is not open for writing")
        if st.reset_by_peer or not data:
            return
        chunk = bytes(data)  # no copy for bytes; snapshots a caller's bytearray
        st.queue.append(chunk)
        st.queued += len(chunk)
        self._sending[stream_id] = None

    def close_write(self, stream_id: int) -> None:
        """Queue EOF after any queued data.  Idempotent."""
        st = self._streams[stream_id]
        if not st.writable:
            raise ValueError(f"stream {stream_id} is not writable")
        if not st.write_closed:
            st.write_closed = True
            self._sending[stream_id] = None

    def queued(self, stream_id: int) -> int:
        return self._streams[stream_id].queued

    def send_window(self, stream_id: int) -> int:
        return self._streams[stream_id].send_window

    def has_outgoing(self) -> bool:
        """True if outgoing() would return at least one frame."""
        if self._credits or self._resets:
            return True
        return any(self._streams[sid].wants_send() for sid in self._sending)

    def outgoing(self) -> list[bytes]:
        """Encode every frame that may be sent now, one item per frame.

        CREDIT and RESET go first: they are tiny and unblock the peer.  DATA is then
        emitted one chunk per stream per round so a busy stream cannot starve the
        others; EOF follows a stream's last chunk.
        """
        return self._collect(split_data=False)

    def outgoing_parts(self) -> list[bytes]:
        """Like outgoing(), but each DATA frame is two items: its header, then its payload.

        The payload is the queued bytes object itself, never copied behind its
        header; a writer hands the items to writev() in order.  This is the
        guest's path, where every copy of a stream's bytes is emulated.
        """
        return self._collect(split_data=True)

    def _collect(self, *, split_data: bool) -> list[bytes]:
        out = [encode_frame(Kind.CREDIT, sid, _CREDIT.pack(n)) for sid, n in self._credits.items()]
        self._credits.clear()
        out.extend(encode_frame(Kind.RESET, sid) for sid in self._resets)
        self._resets.clear()
        progressed = True
        while progressed and self._sending:
            progressed = False
            for sid in list(self._sending):
                st = self._streams[sid]
                if st.queued and st.send_window:
                    n = min(st.queued, st.send_window, self._max_chunk)
                    st.send_window -= n
                    if split_data:
                        out.append(encode_data_header(sid, n))
                        out.append(st.take(n))
                    else:
                        out.append(encode_frame(Kind.DATA, sid, st.take(n)))
                    progressed = True
                if not st.queued and st.write_closed and not st.eof_sent:
                    st.eof_sent = True
                    out.append(encode_frame(Kind.EOF, sid))
                if not st.queued and (st.eof_sent or not st.write_closed):
                    del self._sending[sid]
        return out

    def receive(self, frame: Frame) -> list[StreamEvent]:
        """Apply one DATA/CREDIT/EOF/RESET frame from the peer and return what it means."""
        handler = _HANDLERS.get(frame.kind)
        if handler is None:
            raise ValueError(f"{Kind.name_of(frame.kind)} is not a stream frame")
        sid = frame.channel
        if sid == 0:
            raise ProtocolError(f"{Kind.name_of(frame.kind)} frame on stream 0")
        st = self._streams.get(sid)
        if st is None:
            # Unknown or already closed locally: a race with our close/reset, not an
            # error.  Dropped DATA is deliberately not credited; the stream is gone.
            return []
        return handler(self, sid, st, frame.payload)

    def _on_data(self, sid: int, st: _Stream, payload: bytes) -> list[StreamEvent]:
        if not st.readable:
            raise ProtocolError(f"stream {sid}: DATA on a stream we do not read")
        if st.eof_received:
            raise ProtocolError(f"stream {sid}: DATA after EOF or RESET")
        if len(payload) > st.recv_window:
            raise ProtocolError(f"stream {sid}: peer exceeded its window")
        if not payload:
            return []
        st.recv_window -= len(payload)
        st.unconsumed += len(payload)
        return [StreamData(sid, payload)]

    def _on_eof(self, sid: int, st: _Stream, payload: bytes) -> list[StreamEvent]:
        if payload:
            raise ProtocolError(f"stream {sid}: EOF with a payload")
        if not st.readable:
            raise ProtocolError(f"stream {sid}: EOF on a stream we do not read")
        if st.eof_received:
            raise ProtocolError(f"stream {sid}: duplicate EOF")
        st.eof_received = True
        self._credits.pop(sid, None)  # the peer will not send again; credit is pointless
        return [StreamEof(sid)]

    def _on_credit(self, sid: int, st: _Stream, payload: bytes) -> list[StreamEvent]:
        if len(payload) != _CREDIT.size:
            raise ProtocolError(f"stream {sid}: CREDIT payload must be 4 bytes")
        (increment,) = _CREDIT.unpack(payload)
        if increment == 0:
            raise ProtocolError(f"stream {sid}: CREDIT of 0")
        if not st.writable:
            raise ProtocolError(f"stream {sid}: CREDIT on a stream we do not write")
        before = st.send_window
        if before + increment > MAX_WINDOW:
            raise ProtocolError(f"stream {sid}: window would exceed {MAX_WINDOW}")
        st.send_window = before + increment
        if before == 0 and not st.eof_sent and not st.reset_by_peer:
            return [StreamWritable(sid)]
        return []

    def _on_reset(self, sid: int, st: _Stream, payload: bytes) -> list[StreamEvent]:
        if payload:
            raise ProtocolError(f"stream {sid}: RESET with a payload")
        if st.reset_by_peer:
            return []
        st.reset_by_peer = True
        st.eof_received = st.eof_sent = st.write_closed = True
        st.drop_queue()
        self._sending.pop(sid, None)
        self._credits.pop(sid, None)
        return [StreamReset(sid)]

    def consumed(self, stream_id: int, n: int) -> None:
        """The application has used n received bytes; may schedule a CREDIT frame.

        A no-op for streams already closed or reset locally, since buffered data is often
        drained after the stream is gone.
        """
        st = self._streams.get(stream_id)
        if st is None:
            return
        if not 0 <= n <= st.unconsumed:
            raise ValueError(f"stream {stream_id}: consumed {n} of {st.unconsumed} unconsumed")
        st.unconsumed -= n
        st.uncredited += n
        if st.uncredited >= self._credit_threshold:
            self._grant(stream_id, st)

    def flush_credit(self, stream_id: int) -> None:
        """Schedule credit for everything consumed so far, without waiting for the batch."""
        st = self._streams.get(stream_id)
        if st is not None:
            self._grant(stream_id, st)

    def _grant(self, sid: int, st: _Stream) -> None:
        n = st.uncredited
        if n == 0 or st.eof_received:
            return
        st.uncredited = 0
        st.recv_window += n
        self._credits[sid] = self._credits.get(sid, 0) + n

    def _forget(self, sid: int) -> None:
        self._streams.pop(sid, None)
        self._sending.pop(sid, None)
        self._credits.pop(sid, None)


_HANDLERS = {
    Kind.DATA: StreamMux._on_data,
    Kind.EOF: StreamMux._on_eof,
    Kind.CREDIT: StreamMux._on_credit,
    Kind.RESET: StreamMux._on_reset,
}
