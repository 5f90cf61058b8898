"""The events a StreamMux reports for the frames it receives (see streams.py).

Plain immutable values (``_Value``, not dataclasses: the guest imports these
too, and every import under emulation costs boot time).
"""

from __future__ import annotations

from .frame import _Value


class StreamData(_Value):
    """Bytes received on a stream; call StreamMux.consumed() once they are really used."""

    __match_args__ = ("stream_id", "data")
    __slots__ = __match_args__

    stream_id: int
    data: bytes

    def __init__(self, stream_id: int, data: bytes) -> None:
        self.stream_id = stream_id
        self.data = data


class StreamEof(_Value):
    """The peer will send no more data on this stream."""

    __match_args__ = ("stream_id",)
    __slots__ = __match_args__

    stream_id: int

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamWritable(_Value):
    """Our send window went from 0 to positive: an IO loop waiting to send may resume."""

    __match_args__ = ("stream_id",)
    __slots__ = __match_args__

    stream_id: int

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamReset(_Value):
    """The peer abandoned the stream: it will neither read nor write it any more."""

    __match_args__ = ("stream_id",)
    __slots__ = __match_args__

    stream_id: int

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


StreamEvent = StreamData | StreamEof | StreamWritable | StreamReset
