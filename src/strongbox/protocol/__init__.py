"""The strongbox protocol is how the host runtime and the guest agent talk over one byte stream.

Each container runs in a microVM whose only link to the host is a single virtio-serial
port.  Handshake, RPC, notifications and the stdio of every process in the guest all
share it, so the stream is cut into frames.  Everything here is sans-IO (bytes in,
bytes out, no sockets, threads or asyncio) and standard-library only, because the same
code runs in the host's asyncio client and in the guest's pruned CPython.

Frame header (16 bytes, big-endian), then `length` payload bytes::

    byte  0       1       2       3       4       5       6       7
        +-------+-------+-------+-------+-------+-------+-------+-------+
        |  'S'  |  'B'  |version| kind  |     flags     | reserved (0)  |
        +-------+-------+-------+-------+-------+-------+-------+-------+
        |        channel_id (u32)       |         length (u32)          |
        +-------+-------+-------+-------+-------+-------+-------+-------+
    byte  8       9       10      11      12      13      14      15

Kinds and the meaning of channel_id:

    HELLO     0            handshake, JSON
    REQUEST   request id   host -> agent call, JSON {"method", "params"}
    RESPONSE  request id   agent -> host, JSON {"result"} or {"error": {code, message, data}}
    EVENT     0            unsolicited agent notification, JSON {"name", "data"}
    DATA      stream id    raw bytes of one stream
    CREDIT    stream id    u32 flow-control increment
    EOF       stream id    the sender will send no more DATA on the stream
    RESET     stream id    the sender abandoned the stream in both directions

Handshake: the host sends HELLO{version, nonce, role="host"}; the agent answers HELLO
with role="agent" echoing the nonce, or with "error" set if it cannot speak that
version.  Nothing else is sent before the handshake completes.

Requests: ids are chosen by the host, unique among requests in flight; many may be in
flight at once and responses arrive in any order, so a slow call (waiting for a process)
never blocks a fast one.  Errors carry a string code (E_* constants) so the host can map
them to exceptions without parsing messages.

Streams: the host allocates stream ids (it creates the processes and tells the agent
which ids carry their stdin/stdout/stderr) and never reuses one within a connection.
Each stream direction has a credit window (INITIAL_WINDOW); the receiver returns credit
only after its application has consumed the data, so a stalled reader stops its writer
instead of exhausting memory.  DATA chunks are bounded (MAX_DATA_CHUNK, a few ms of
transfer) and interleaved across streams, so control frames and other streams stay
responsive.

Bounds: any payload is at most MAX_PAYLOAD and is rejected from the header alone; a
peer that breaks any rule gets a ProtocolError and the connection is torn down.

Versioning: VERSION in the header covers the framing; message-level evolution uses the
HELLO version and feature list.  Unknown JSON keys and unknown flag bits are ignored so
that additions stay compatible; anything else unexpected is an error.
"""

from .frame import (
    FLAG_NONE,
    HEADER,
    KIND_NAMES,
    MAGIC,
    MAX_DATA_CHUNK,
    MAX_PAYLOAD,
    VERSION,
    Frame,
    FrameDecoder,
    Kind,
    ProtocolError,
    encode_frame,
)
from .messages import (
    E_BUSY,
    E_CONTAINER,
    E_EXISTS,
    E_INTERNAL,
    E_INVALID_PARAMS,
    E_NETWORK,
    E_NOT_FOUND,
    E_OS,
    E_STATE,
    E_TIMEOUT,
    E_UNKNOWN_METHOD,
    E_UNSUPPORTED,
    MAX_METHOD_LENGTH,
    Event,
    Hello,
    InvalidParams,
    Message,
    RemoteError,
    Request,
    Response,
    decode_message,
)
from .streams import (
    INITIAL_WINDOW,
    MAX_WINDOW,
    StreamData,
    StreamEof,
    StreamEvent,
    StreamMux,
    StreamReset,
    StreamWritable,
)

__all__ = [
    "E_BUSY",
    "E_CONTAINER",
    "E_EXISTS",
    "E_INTERNAL",
    "E_INVALID_PARAMS",
    "E_NETWORK",
    "E_NOT_FOUND",
    "E_OS",
    "E_STATE",
    "E_TIMEOUT",
    "E_UNKNOWN_METHOD",
    "E_UNSUPPORTED",
    "FLAG_NONE",
    "HEADER",
    "INITIAL_WINDOW",
    "KIND_NAMES",
    "MAGIC",
    "MAX_DATA_CHUNK",
    "MAX_METHOD_LENGTH",
    "MAX_PAYLOAD",
    "MAX_WINDOW",
    "VERSION",
    "Event",
    "Frame",
    "FrameDecoder",
    "Hello",
    "InvalidParams",
    "Kind",
    "Message",
    "ProtocolError",
    "RemoteError",
    "Request",
    "Response",
    "StreamData",
    "StreamEof",
    "StreamEvent",
    "StreamMux",
    "StreamReset",
    "StreamWritable",
    "decode_message",
    "encode_frame",
]
