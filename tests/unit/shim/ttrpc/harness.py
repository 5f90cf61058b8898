"""A real ttrpc server on a short-lived unix socket, raw connections, and hand-made protobuf.

The wire helpers (``pb_*``, ``request_frame``, ``response_bytes``) encode by hand
from the field numbers in shared/reference/containerd-shim-v2.md section 2, never
through the generated classes, so the implementation cannot pass by agreeing
with itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import tempfile
from collections.abc import AsyncIterator, Awaitable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from strongbox.shim.ttrpc.frame import Frame, read_frame
from strongbox.shim.ttrpc.server import RequestContext, Server
from strongbox.shim.ttrpc.status import not_found

SERVICE = "test.v1.Echo"

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    """Run one test coroutine on a fresh loop, failing instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# --- handlers of the test service ----------------------------------------------------------


async def echo(payload: bytes, ctx: RequestContext) -> bytes:
    return payload


async def sleep_then_echo(payload: bytes, ctx: RequestContext) -> bytes:
    """Payload ``b"<seconds>:<tag>"``: sleep that long, answer the payload."""
    await asyncio.sleep(float(payload.split(b":", 1)[0]))
    return payload


async def missing(payload: bytes, ctx: RequestContext) -> bytes:
    raise not_found(f"no such thing: {payload.decode()}")


async def crash(payload: bytes, ctx: RequestContext) -> bytes:
    raise RuntimeError("handler crashed")


async def context(payload: bytes, ctx: RequestContext) -> bytes:
    return json.dumps({"metadata": ctx.metadata, "time_left": ctx.time_left(),
                       "service": ctx.service, "method": ctx.method,
                       "stream_id": ctx.stream_id}).encode()


async def huge(payload: bytes, ctx: RequestContext) -> bytes:
    return b"x" * (5 << 20)


def make_server(**kwargs: Any) -> Server:
    server = Server(**kwargs)
    server.register(SERVICE, {
        "Echo": echo, "Sleep": sleep_then_echo, "Missing": missing, "Crash": crash,
        "Context": context, "Huge": huge,
    })
    return server


@asynccontextmanager
async def listening() -> AsyncIterator[tuple[socket.socket, str]]:
    """A listening unix socket at a short path (sun_path has 108 bytes)."""
    tmp = tempfile.mkdtemp(prefix="ttrpc-")
    path = os.path.join(tmp, "sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen()
        yield sock, path
    finally:
        sock.close()
        shutil.rmtree(tmp, ignore_errors=True)


@asynccontextmanager
async def serving(server: Server | None = None) -> AsyncIterator[tuple[Server, str]]:
    """``server`` (default: make_server()) serving on a fresh socket; closed afterwards."""
    server = server or make_server()
    async with listening() as (sock, path):
        task = asyncio.create_task(server.serve(sock))
        await asyncio.sleep(0)
        try:
            yield server, path
        finally:
            await server.close()
            await task


# --- raw connections -------------------------------------------------------------------------


class Raw:
    """A connection driven byte by byte, to send what no well-behaved client would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, path: str) -> Raw:
        return cls(*await asyncio.open_unix_connection(path))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def frame(self, timeout: float = 2.0) -> Frame:
        frame = await asyncio.wait_for(read_frame(self.reader), timeout)
        assert frame is not None, "connection closed instead of a frame"
        return frame

    async def eof(self, timeout: float = 2.0) -> bool:
        """True when the peer closes the connection without sending anything more."""
        return await asyncio.wait_for(self.reader.read(1), timeout) == b""

    def close(self) -> None:
        self.writer.close()


async def gather(*aws: Awaitable[T]) -> list[T | BaseException]:
    return list(await asyncio.gather(*aws, return_exceptions=True))


# --- protobuf by hand ------------------------------------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> ten-byte two's complement, as protobuf does
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def pb_bytes(field: int, data: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes, messages."""
    return varint(field << 3 | 2) + varint(len(data)) + data


def pb_varint(field: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return varint(field << 3) + varint(value)


def request_bytes(service: str, method: str, payload: bytes = b"", timeout_nano: int = 0,
                  metadata: tuple[tuple[str, str], ...] = ()) -> bytes:
    """ttrpc.Request{service=1, method=2, payload=3, timeout_nano=4, metadata=5}."""
    out = pb_bytes(1, service.encode()) + pb_bytes(2, method.encode())
    if payload:
        out += pb_bytes(3, payload)
    if timeout_nano:
        out += pb_varint(4, timeout_nano)
    for key, value in metadata:
        out += pb_bytes(5, pb_bytes(1, key.encode()) + pb_bytes(2, value.encode()))
    return out


def response_bytes(code: int = 0, message: str = "", payload: bytes = b"") -> bytes:
    """ttrpc.Response{status=1 google.rpc.Status{code=1, message=2}, payload=2}."""
    status = pb_varint(1, code) if code else b""
    status += pb_bytes(2, message.encode()) if message else b""
    return pb_bytes(1, status) + (pb_bytes(2, payload) if payload else b"")


def frame_bytes(stream_id: int, message_type: int, data: bytes, flags: int = 0) -> bytes:
    """Header by hand: u32 length, u32 stream id, u8 type, u8 flags, big-endian."""
    return struct.pack(">IIBB", len(data), stream_id, message_type, flags) + data
