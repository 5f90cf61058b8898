"""Tests for the ttrpc client against a scripted peer on a socketpair, byte for byte."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from strongbox.shim.ttrpc.client import Client
from strongbox.shim.ttrpc.frame import (
    MAX_MESSAGE,
    MAX_STREAM_ID,
    MESSAGE_DATA,
    MESSAGE_REQUEST,
    MESSAGE_RESPONSE,
    encode_header,
)
from strongbox.shim.ttrpc.proto.ttrpc_pb2 import KeyValue
from strongbox.shim.ttrpc.status import (
    DEADLINE_EXCEEDED,
    FAILED_PRECONDITION,
    INTERNAL,
    RESOURCE_EXHAUSTED,
    UNAVAILABLE,
    TtrpcError,
)
from tests.unit.shim.ttrpc.harness import (
    SERVICE,
    Raw,
    frame_bytes,
    gather,
    request_bytes,
    response_bytes,
    run,
    serving,
)


@asynccontextmanager
async def peer() -> AsyncIterator[tuple[Client, Raw]]:
    """A Client on one end of a socketpair, and the raw other end playing the server."""
    ours, theirs = socket.socketpair()
    client = await Client.connect(ours)
    raw = Raw(*await asyncio.open_unix_connection(sock=theirs))
    try:
        yield client, raw
    finally:
        await client.close()
        raw.close()


def _error(result: object) -> TtrpcError:
    assert isinstance(result, TtrpcError), result
    return result


def test_request_bytes_and_stream_ids() -> None:
    async def scenario() -> list[bytes]:
        async with peer() as (client, raw):
            calls = [asyncio.create_task(client.call("svc", "M", b"a")),
                     asyncio.create_task(client.call("svc", "N", b"", timeout=2,
                                                     metadata={"k": ["v1", "v2"]})),
                     asyncio.create_task(client.call("svc", "O", b"c"))]
            frames = [await raw.frame() for _ in calls]
            for frame in frames:
                await raw.send(frame_bytes(frame.stream_id, MESSAGE_RESPONSE, b""))
            await gather(*calls)
            return [f.encode() for f in frames]

    assert run(scenario()) == [
        frame_bytes(1, MESSAGE_REQUEST, request_bytes("svc", "M", b"a")),
        frame_bytes(3, MESSAGE_REQUEST, request_bytes(
            "svc", "N", timeout_nano=2_000_000_000, metadata=(("k", "v1"), ("k", "v2")))),
        frame_bytes(5, MESSAGE_REQUEST, request_bytes("svc", "O", b"c")),
    ]


def test_responses_in_any_order_reach_their_calls() -> None:
    async def scenario() -> list[bytes | BaseException]:
        async with peer() as (client, raw):
            calls = [asyncio.create_task(client.call("svc", "M", b"")) for _ in range(3)]
            for _ in calls:
                await raw.frame()
            await raw.send(frame_bytes(5, MESSAGE_RESPONSE, response_bytes(payload=b"five"))
                           + frame_bytes(9, MESSAGE_RESPONSE, response_bytes(payload=b"nobody"))
                           + frame_bytes(3, MESSAGE_DATA, b"ignored")
                           + frame_bytes(1, MESSAGE_RESPONSE, response_bytes(payload=b"one"))
                           + frame_bytes(3, MESSAGE_RESPONSE,
                                         response_bytes(FAILED_PRECONDITION, "not running")))
            return await gather(*calls)

    one, three, five = run(scenario())
    assert (one, five) == (b"one", b"five")
    assert (_error(three).code, _error(three).message) == (FAILED_PRECONDITION, "not running")


def test_timeout_raises_deadline_exceeded_and_drops_the_late_answer() -> None:
    async def scenario() -> tuple[TtrpcError, bytes]:
        async with peer() as (client, raw):
            with pytest.raises(TtrpcError) as info:
                await client.call("svc", "Slow", b"", timeout=0.05)
            late = await raw.frame()
            nxt = asyncio.create_task(client.call("svc", "Fast", b""))
            fresh = await raw.frame()
            await raw.send(frame_bytes(late.stream_id, MESSAGE_RESPONSE,
                                       response_bytes(payload=b"late"))
                           + frame_bytes(fresh.stream_id, MESSAGE_RESPONSE,
                                         response_bytes(payload=b"fresh")))
            return info.value, await nxt

    err, fresh = run(scenario())
    assert (err.code, err.message) == (DEADLINE_EXCEEDED, "context deadline exceeded")
    assert fresh == b"fresh"


def test_non_positive_timeout_fails_without_sending() -> None:
    async def scenario() -> TtrpcError:
        async with peer() as (client, _):
            with pytest.raises(TtrpcError) as info:
                await client.call("svc", "M", b"", timeout=0)
            return info.value

    assert run(scenario()).code == DEADLINE_EXCEEDED


def test_connection_loss_fails_pending_and_later_calls() -> None:
    async def scenario() -> tuple[list[bytes | BaseException], TtrpcError, bool]:
        async with peer() as (client, raw):
            calls = [asyncio.create_task(client.call("svc", "M", b"")) for _ in range(3)]
            for _ in calls:
                await raw.frame()
            raw.close()
            results = await gather(*calls)
            with pytest.raises(TtrpcError) as info:
                await client.call("svc", "M", b"")
            return results, info.value, client.closed

    results, later, closed = run(scenario())
    for result in [*results, later]:
        assert _error(result).code == UNAVAILABLE
        assert _error(result).message.startswith("ttrpc: connection lost")
    assert closed


def test_close_fails_pending_calls_as_closed() -> None:
    async def scenario() -> TtrpcError:
        async with peer() as (client, raw):
            call = asyncio.create_task(client.call("svc", "M", b""))
            await raw.frame()
            await client.close()
            return _error((await gather(call))[0])

    err = run(scenario())
    assert (err.code, err.message) == (UNAVAILABLE, "ttrpc: client closed")


def test_broken_framing_from_the_server_fails_the_connection() -> None:
    async def scenario() -> TtrpcError:
        async with peer() as (client, raw):
            call = asyncio.create_task(client.call("svc", "M", b""))
            await raw.frame()
            await raw.send(encode_header(50, 1, MESSAGE_RESPONSE) + b"short")
            raw.writer.write_eof()
            return _error((await gather(call))[0])

    err = run(scenario())
    assert err.code == UNAVAILABLE
    assert "inside a frame on stream 1" in err.message


def test_oversized_or_garbled_response_fails_only_its_call() -> None:
    length = MAX_MESSAGE + 1

    async def scenario() -> list[bytes | BaseException]:
        async with peer() as (client, raw):
            calls = [asyncio.create_task(client.call("svc", "M", b"")) for _ in range(3)]
            for _ in calls:
                await raw.frame()
            await raw.send(encode_header(length, 1, MESSAGE_RESPONSE) + b"\x00" * length
                           + frame_bytes(3, MESSAGE_RESPONSE, b"\x0a\xff\xff")
                           + frame_bytes(5, MESSAGE_RESPONSE, response_bytes(payload=b"ok")))
            return await gather(*calls)

    big, garbled, ok = run(scenario())
    assert _error(big).code == RESOURCE_EXHAUSTED
    assert _error(big).message == f"message length {length} exceed maximum message size of 4194304"
    assert _error(garbled).code == INTERNAL
    assert ok == b"ok"


def test_oversized_request_is_refused_without_sending() -> None:
    async def scenario() -> tuple[TtrpcError, bytes]:
        async with peer() as (client, raw):
            with pytest.raises(TtrpcError) as info:
                await client.call("svc", "M", b"\x00" * MAX_MESSAGE)
            call = asyncio.create_task(client.call("svc", "M", b"small"))
            frame = await raw.frame()
            await raw.send(frame_bytes(frame.stream_id, MESSAGE_RESPONSE, b""))
            await call
            return info.value, frame.data

    err, sent = run(scenario())
    assert err.code == RESOURCE_EXHAUSTED
    assert sent == request_bytes("svc", "M", b"small")


def test_stream_ids_wrap_and_skip_ids_in_flight() -> None:
    async def scenario() -> list[int]:
        async with peer() as (client, raw):
            client._next_stream_id = MAX_STREAM_ID - 2
            calls = [asyncio.create_task(client.call("svc", "M", b"")) for _ in range(3)]
            ids = [(await raw.frame()).stream_id for _ in calls]
            for sid in ids:
                await raw.send(frame_bytes(sid, MESSAGE_RESPONSE, b""))
            await gather(*calls)
            return ids

    assert run(scenario()) == [MAX_STREAM_ID - 2, MAX_STREAM_ID, 1]


def test_connect_addresses() -> None:
    async def scenario() -> tuple[bytes, bytes, TtrpcError]:
        async with serving() as (_, path):
            async with await Client.connect(f"unix://{path}") as client:
                by_url = await client.call(SERVICE, "Echo", b"url")
            async with await Client.connect(path) as client:
                by_path = await client.call(SERVICE, "Echo", b"path")
        with pytest.raises(TtrpcError) as info:
            await Client.connect(path + ".missing")
        return by_url, by_path, info.value

    by_url, by_path, missing = run(scenario())
    assert (by_url, by_path) == (b"url", b"path")
    assert missing.code == UNAVAILABLE
    with pytest.raises(ValueError, match="only unix sockets"):
        run(Client.connect("vsock://3:1024"))


def test_call_typed_end_to_end() -> None:
    async def scenario() -> KeyValue:
        async with serving() as (_, path), await Client.connect(path) as client:
            return await client.call_typed(SERVICE, "Echo", KeyValue(key="k", value="v"),
                                           KeyValue, timeout=5)

    out = run(scenario())
    assert (out.key, out.value) == ("k", "v")
