"""Tests for the ttrpc server: a real one on a unix socket, driven by raw bytes and Client."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import time

import pytest

from strongbox.shim.ttrpc.client import Client
from strongbox.shim.ttrpc.frame import (
    MESSAGE_DATA,
    MESSAGE_REQUEST,
    MESSAGE_RESPONSE,
    Frame,
    encode_header,
)
from strongbox.shim.ttrpc.proto.ttrpc_pb2 import KeyValue
from strongbox.shim.ttrpc.server import RequestContext, Server
from strongbox.shim.ttrpc.status import (
    DEADLINE_EXCEEDED,
    INTERNAL,
    INVALID_ARGUMENT,
    NOT_FOUND,
    RESOURCE_EXHAUSTED,
    UNAVAILABLE,
    UNIMPLEMENTED,
    UNKNOWN,
    TtrpcError,
)
from tests.unit.shim.ttrpc.harness import (
    SERVICE,
    Raw,
    frame_bytes,
    gather,
    listening,
    make_server,
    request_bytes,
    response_bytes,
    run,
    serving,
)


async def _raw_call(path: str, frames: list[bytes], expect: int) -> list[Frame]:
    raw = await Raw.open(path)
    try:
        await raw.send(b"".join(frames))
        return [await raw.frame() for _ in range(expect)]
    finally:
        raw.close()


async def _call_error(path: str, method: str, payload: bytes = b"", **kwargs: object) -> TtrpcError:
    async with await Client.connect(path) as client:
        with pytest.raises(TtrpcError) as info:
            await client.call(SERVICE, method, payload, **kwargs)  # type: ignore[arg-type]
        return info.value


def test_unary_call() -> None:
    async def scenario() -> bytes:
        async with serving() as (_, path), await Client.connect(path) as client:
            return await client.call(SERVICE, "Echo", b"hello")

    assert run(scenario()) == b"hello"


def test_answers_a_hand_built_request_with_the_expected_bytes() -> None:
    request = frame_bytes(1, MESSAGE_REQUEST, request_bytes(SERVICE, "Echo", b"ping"))
    unknown = frame_bytes(3, MESSAGE_REQUEST, request_bytes("no.such.Service", "X"))

    async def scenario() -> list[Frame]:
        async with serving() as (_, path):
            return await _raw_call(path, [request, unknown], 2)

    first, second = sorted(run(scenario()), key=lambda f: f.stream_id)
    assert first.encode() == frame_bytes(1, MESSAGE_RESPONSE, b"\x0a\x00\x12\x04ping")
    assert second.encode() == frame_bytes(
        3, MESSAGE_RESPONSE, response_bytes(UNIMPLEMENTED, "service no.such.Service"))


@pytest.mark.parametrize(("service", "method", "code", "message"), [
    ("no.such.Service", "Echo", UNIMPLEMENTED, "service no.such.Service"),
    (SERVICE, "NoSuchMethod", UNIMPLEMENTED, "method NoSuchMethod"),
])
def test_unknown_service_or_method(service: str, method: str, code: int, message: str) -> None:
    async def scenario() -> TtrpcError:
        async with serving() as (_, path), await Client.connect(path) as client:
            with pytest.raises(TtrpcError) as info:
                await client.call(service, method, b"")
            return info.value

    err = run(scenario())
    assert (err.code, err.message) == (code, message)


def test_handler_errors_map_to_codes(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> tuple[TtrpcError, TtrpcError]:
        async with serving() as (_, path):
            return await _call_error(path, "Missing", b"abc"), await _call_error(path, "Crash")

    with caplog.at_level(logging.ERROR, "strongbox.shim.ttrpc"):
        missing, crash = run(scenario())
    assert (missing.code, missing.message) == (NOT_FOUND, "no such thing: abc")
    assert (crash.code, crash.message) == (UNKNOWN, "handler crashed")
    assert any("Crash failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_server_enforces_timeout_nano() -> None:
    request = request_bytes(SERVICE, "Sleep", b"5:slow", timeout_nano=50_000_000)

    async def scenario() -> tuple[Frame, float]:
        async with serving() as (_, path):
            start = time.monotonic()
            [frame] = await _raw_call(path, [frame_bytes(1, MESSAGE_REQUEST, request)], 1)
            return frame, time.monotonic() - start

    frame, elapsed = run(scenario())
    assert frame.data == response_bytes(DEADLINE_EXCEEDED, "context deadline exceeded")
    assert elapsed < 1.0


def test_handler_sees_metadata_and_deadline() -> None:
    async def scenario() -> dict[str, object]:
        async with serving() as (_, path), await Client.connect(path) as client:
            out = await client.call(SERVICE, "Context", b"", timeout=30,
                                    metadata={"containerd-namespace": "k8s.io", "x": ["1", "2"]})
            return dict(json.loads(out))

    seen = run(scenario())
    assert seen["metadata"] == {"containerd-namespace": ["k8s.io"], "x": ["1", "2"]}
    assert 29 < float(seen["time_left"]) <= 30  # type: ignore[arg-type]
    assert (seen["service"], seen["method"], seen["stream_id"]) == (SERVICE, "Context", 1)


def test_hundred_concurrent_calls_complete_out_of_order() -> None:
    rng = random.Random(1234)
    delays = [rng.uniform(0, 0.2) for _ in range(100)]
    completed: list[int] = []

    async def scenario() -> list[bytes | BaseException]:
        async with serving() as (_, path), await Client.connect(path) as client:
            async def one(i: int) -> bytes:
                out = await client.call(SERVICE, "Sleep", f"{delays[i]}:{i}".encode())
                completed.append(i)
                return out
            return await gather(*(one(i) for i in range(100)))

    start = time.monotonic()
    results = run(scenario())
    assert time.monotonic() - start < 1.5  # concurrent, not 100 sleeps in a row
    assert results == [f"{delays[i]}:{i}".encode() for i in range(100)]
    assert completed != sorted(completed)
    by_delay = sorted(range(100), key=lambda i: delays[i])
    assert set(completed[:20]) & set(by_delay[:30]) == set(completed[:20])


def test_even_stream_ids_are_rejected() -> None:
    frames = [frame_bytes(sid, MESSAGE_REQUEST, request_bytes(SERVICE, "Echo", payload))
              for sid, payload in ((2, b"x"), (0, b"x"), (5, b"ok"))]

    async def scenario() -> list[Frame]:
        async with serving() as (_, path):
            return await _raw_call(path, frames, 3)

    even, zero, ok = run(scenario())
    expected = response_bytes(INVALID_ARGUMENT, "StreamID must be odd for client initiated streams")
    assert (even.stream_id, even.data) == (2, expected)
    assert (zero.stream_id, zero.data) == (0, expected)
    assert (ok.stream_id, ok.data) == (5, response_bytes(payload=b"ok"))


def test_reused_stream_id_is_rejected() -> None:
    echo = request_bytes(SERVICE, "Echo", b"x")

    async def scenario() -> list[Frame]:
        async with serving() as (_, path):
            return await _raw_call(path, [frame_bytes(7, MESSAGE_REQUEST, echo),
                                          frame_bytes(7, MESSAGE_REQUEST, echo),
                                          frame_bytes(3, MESSAGE_REQUEST, echo)], 3)

    answers = sorted((f.stream_id, f.data) for f in run(scenario()))
    rejected = response_bytes(INVALID_ARGUMENT, "StreamID cannot be re-used and must increment")
    assert answers == sorted([(3, rejected), (7, rejected), (7, response_bytes(payload=b"x"))])


def test_malformed_envelope_gets_an_error_and_the_connection_goes_on() -> None:
    async def scenario() -> list[Frame]:
        async with serving() as (_, path):
            return await _raw_call(path, [
                frame_bytes(1, MESSAGE_REQUEST, b"\x0a\xff\xff\xff\xff\x0f garbage"),
                frame_bytes(3, MESSAGE_REQUEST, request_bytes(SERVICE, "Echo", b"next")),
            ], 2)

    bad, good = run(scenario())
    assert bad.stream_id == 1 and bad.message_type == MESSAGE_RESPONSE
    assert b"unmarshal request error" in bad.data
    assert bad.data.startswith(b"\x0a") and b"\x08\x03" in bad.data  # status code 3
    assert good.data == response_bytes(payload=b"next")


def test_oversized_frame_fails_its_stream_and_the_connection_goes_on() -> None:
    length = 5 << 20

    async def scenario() -> tuple[Frame, Frame]:
        async with serving() as (_, path):
            raw = await Raw.open(path)
            await raw.send(encode_header(length, 1, MESSAGE_REQUEST) + b"\x00" * length)
            rejected = await raw.frame()
            await raw.send(frame_bytes(3, MESSAGE_REQUEST,
                                       request_bytes(SERVICE, "Echo", b"still here")))
            after = await raw.frame()
            raw.close()
            return rejected, after

    rejected, after = run(scenario())
    assert rejected.stream_id == 1
    assert rejected.data == response_bytes(
        RESOURCE_EXHAUSTED, "message length 5242880 exceed maximum message size of 4194304")
    assert (after.stream_id, after.data) == (3, response_bytes(payload=b"still here"))


def test_oversized_response_becomes_resource_exhausted() -> None:
    async def scenario() -> TtrpcError:
        async with serving() as (_, path):
            return await _call_error(path, "Huge")

    err = run(scenario())
    assert err.code == RESOURCE_EXHAUSTED
    assert "exceed maximum message size of 4194304" in err.message


def test_truncated_frame_then_eof_closes_that_connection_only() -> None:
    async def scenario() -> tuple[bool, bytes]:
        async with serving() as (_, path):
            raw = await Raw.open(path)
            await raw.send(encode_header(100, 1, MESSAGE_REQUEST) + b"only ten b")
            raw.writer.write_eof()
            closed = await raw.eof()
            raw.close()
            async with await Client.connect(path) as client:
                return closed, await client.call(SERVICE, "Echo", b"fine")

    assert run(scenario()) == (True, b"fine")


def test_other_message_types_are_ignored() -> None:
    async def scenario() -> list[Frame]:
        async with serving() as (_, path):
            return await _raw_call(path, [
                frame_bytes(1, MESSAGE_DATA, b"stream data"),
                frame_bytes(3, 0x7F, b"future type"),
                frame_bytes(5, MESSAGE_REQUEST, request_bytes(SERVICE, "Echo", b"x")),
            ], 1)

    [only] = run(scenario())
    assert only.stream_id == 5


def test_half_closed_client_still_gets_its_answers() -> None:
    async def scenario() -> tuple[Frame, bool]:
        async with serving() as (_, path):
            raw = await Raw.open(path)
            await raw.send(frame_bytes(1, MESSAGE_REQUEST,
                                       request_bytes(SERVICE, "Sleep", b"0.05:late")))
            raw.writer.write_eof()
            frame = await raw.frame()
            closed = await raw.eof()
            raw.close()
            return frame, closed

    frame, closed = run(scenario())
    assert frame.data == response_bytes(payload=b"0.05:late")
    assert closed


def test_typed_handlers() -> None:
    async def upper(request: KeyValue, ctx: RequestContext) -> KeyValue:
        return KeyValue(key=request.key.upper(), value=ctx.method)

    async def scenario() -> tuple[KeyValue, TtrpcError]:
        server = make_server()
        server.register_typed("test.v1.Typed", {"Upper": (KeyValue, upper)})
        async with serving(server) as (_, path), await Client.connect(path) as client:
            out = await client.call_typed("test.v1.Typed", "Upper", KeyValue(key="abc"), KeyValue)
            with pytest.raises(TtrpcError) as info:
                await client.call("test.v1.Typed", "Upper", b"\x0a\xff")
            return out, info.value

    out, bad = run(scenario())
    assert (out.key, out.value) == ("ABC", "Upper")
    assert bad.code == INTERNAL
    assert bad.message.startswith("ttrpc: error unmarshalling payload")


def test_register_twice_is_refused() -> None:
    server = Server()
    server.register("s", {"M": make_server()._services[SERVICE]["Echo"]})
    with pytest.raises(ValueError, match="s/M registered twice"):
        server.register("s", {"M": make_server()._services[SERVICE]["Echo"]})


def test_close_lets_running_calls_finish_and_cancels_stuck_ones() -> None:
    async def scenario() -> list[bytes | BaseException]:
        server = make_server(shutdown_timeout=0.2)
        async with listening() as (sock, path):
            serve = asyncio.create_task(server.serve(sock))
            await asyncio.sleep(0)
            client = await Client.connect(path)
            quick = asyncio.create_task(client.call(SERVICE, "Sleep", b"0.05:quick"))
            stuck = asyncio.create_task(client.call(SERVICE, "Sleep", b"60:stuck"))
            await asyncio.sleep(0.02)
            closing = asyncio.create_task(server.close())
            await asyncio.sleep(0.01)
            late = await gather(client.call(SERVICE, "Echo", b"too late"))
            await closing
            await serve
            results = await gather(quick, stuck)
            with pytest.raises(TtrpcError, match="Connection refused"):
                await Client.connect(path, timeout=1)
            await client.close()
            return results + late

    quick, stuck, late = run(scenario())
    assert quick == b"0.05:quick"
    assert isinstance(stuck, TtrpcError) and stuck.code == UNAVAILABLE
    assert isinstance(late, TtrpcError)
    assert (late.code, late.message) == (UNAVAILABLE, "ttrpc: server shutting down")


def test_connections_from_another_user_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 4242)
    server = make_server()  # require_same_user is on by default

    async def scenario() -> TtrpcError:
        async with serving(server) as (_, path):
            return await _call_error(path, "Echo", b"x")

    assert run(scenario()).code == UNAVAILABLE


def test_same_user_check_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 4242)
    server = make_server(require_same_user=False)

    async def scenario() -> bytes:
        async with serving(server) as (_, path), await Client.connect(path) as client:
            return await client.call(SERVICE, "Echo", b"x")

    assert run(scenario()) == b"x"


def test_serve_takes_an_inherited_listening_fd() -> None:
    """As the shim gets it: a listening socket rebuilt from a file descriptor."""
    async def scenario() -> bytes:
        async with listening() as (sock, path):
            inherited = socket.socket(fileno=os.dup(sock.fileno()))
            server = make_server()
            serve = asyncio.create_task(server.serve(inherited))
            try:
                async with await Client.connect(f"unix://{path}") as client:
                    return await client.call(SERVICE, "Echo", b"fd3")
            finally:
                await server.close()
                await serve
                inherited.close()

    assert run(scenario()) == b"fd3"
