"""Tests for control messages: round trips and strict rejection of malformed payloads."""

from __future__ import annotations

from typing import Any

import pytest

from strongbox.protocol.frame import Frame, FrameDecoder, Kind, ProtocolError, encode_frame
from strongbox.protocol.messages import (
    E_NOT_FOUND,
    Event,
    Hello,
    Message,
    RemoteError,
    Request,
    Response,
    decode_message,
)


def _round_trip(message: Message) -> Message:
    (frame,) = FrameDecoder().feed(message.encode())
    return decode_message(frame)


@pytest.mark.parametrize(
    "message",
    [
        Hello(1, "n0nce", "host"),
        Hello(1, "n0nce", "agent", "strongbox-agent 0.1", ("exec", "oom"), error="bad version"),
        Request(1, "ping", {}),
        Request(0xFFFFFFFF, "exec", {"argv": ["sh", "-c", "echo ü"], "env": {"A": "1"}}),
        Response(5, result={"pid": 42}),
        Response(5, result=None),
        Response(6, error=RemoteError(E_NOT_FOUND, "no such process", {"pid": 1})),
        Response(6, error=RemoteError("internal", "")),
        Event("process_exited", {"pid": 42, "status": 0}),
    ],
)
def test_round_trip(message: Message) -> None:
    assert _round_trip(message) == message


def test_encoding_is_compact_utf8_and_id_is_the_channel() -> None:
    (frame,) = FrameDecoder().feed(Request(9, "m", {"k": "é"}).encode())
    assert frame.channel == 9
    assert frame.payload == '{"method":"m","params":{"k":"é"}}'.encode()


def test_hello_omits_empty_error() -> None:
    (frame,) = FrameDecoder().feed(Hello(1, "n", "host").encode())
    assert b"error" not in frame.payload


def _frame(kind: int, payload: bytes | str, channel: int = 1) -> Frame:
    raw = payload.encode() if isinstance(payload, str) else payload
    return Frame(kind, channel, raw)


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (_frame(Kind.REQUEST, "not json"), "invalid JSON"),
        (_frame(Kind.REQUEST, b'{"method":"\xff"}'), "UTF-8"),
        (_frame(Kind.REQUEST, "[1,2]"), "expected a JSON object, got array"),
        (_frame(Kind.REQUEST, '{"method":"m","params":NaN}'), "invalid JSON"),
        (_frame(Kind.REQUEST, '{"method":"","params":{}}'), "'method' must be a non-empty string"),
        (_frame(Kind.REQUEST, '{"method":7,"params":{}}'), "'method' must be a non-empty string"),
        (_frame(Kind.REQUEST, '{"method":"' + "m" * 65 + '","params":{}}'), "longer than 64"),
        (_frame(Kind.REQUEST, '{"method":"m","params":[]}'), "'params' must be an object"),
        (_frame(Kind.REQUEST, '{"method":"m"}'), "'params' must be an object"),
        (_frame(Kind.REQUEST, '{"method":"m","params":{}}', channel=0), "id must not be 0"),
        (_frame(Kind.RESPONSE, "{}"), "exactly one"),
        (_frame(Kind.RESPONSE, '{"result":1,"error":null}'), "exactly one"),
        (_frame(Kind.RESPONSE, '{"error":"boom"}'), "'error' must be an object"),
        (_frame(Kind.RESPONSE, '{"error":{"message":"x"}}'), "'code' must be a non-empty"),
        (_frame(Kind.RESPONSE, '{"error":{"code":"x","message":1}}'), "'message' must be"),
        (_frame(Kind.RESPONSE, '{"error":{"code":"x","message":"","data":[]}}'), "'data'"),
        (_frame(Kind.HELLO, '{"version":true,"nonce":"n","role":"host"}', 0), "'version'"),
        (_frame(Kind.HELLO, '{"version":"1","nonce":"n","role":"host"}', 0), "'version'"),
        (_frame(Kind.HELLO, '{"version":1,"role":"host"}', 0), "'nonce'"),
        (_frame(Kind.HELLO, '{"version":1,"nonce":"n","role":"h","features":[1]}', 0), "features"),
        (_frame(Kind.HELLO, '{"version":1,"nonce":"n","role":"host"}', 3), "channel must be 0"),
        (_frame(Kind.EVENT, '{"name":"oom","data":null}', 0), "'data' must be an object"),
        (_frame(Kind.EVENT, '{"data":{}}', 0), "'name'"),
        (_frame(Kind.DATA, "{}"), "does not carry a message"),
    ],
)
def test_malformed_payloads_raise_protocol_error(frame: Frame, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_message(frame)


def test_error_names_the_frame_kind() -> None:
    with pytest.raises(ProtocolError, match=r"^REQUEST payload: 'method' must be a non-empty"):
        decode_message(_frame(Kind.REQUEST, '{"params":{}}'))


def test_unknown_keys_are_ignored_for_forward_compatibility() -> None:
    frame = _frame(Kind.REQUEST, '{"method":"m","params":{},"trace":"abc"}', channel=3)
    assert decode_message(frame) == Request(3, "m", {})


@pytest.mark.parametrize("bad_id", [0, -1, 1 << 32, True, 1.0])
def test_local_construction_rejects_bad_ids(bad_id: Any) -> None:
    with pytest.raises(ValueError, match="id"):
        Request(bad_id, "m", {})
    with pytest.raises(ValueError, match="id"):
        Response(bad_id, result=1)


def test_local_construction_rejects_bad_method_and_ambiguous_response() -> None:
    with pytest.raises(ValueError):
        Request(1, "m" * 65, {})
    with pytest.raises(ValueError):
        Response(1, result=1, error=RemoteError("x", "y"))


def test_oversize_message_refused_on_encode() -> None:
    with pytest.raises(ValueError, match="MAX_PAYLOAD"):
        Event("blob", {"x": "a" * (1 << 20)}).encode()


def test_decode_is_strict_about_hostile_but_well_framed_input() -> None:
    frame = FrameDecoder().feed(encode_frame(Kind.RESPONSE, 2, b'{"result":[1,{"a":null}]}'))[0]
    response = decode_message(frame)
    assert isinstance(response, Response)
    assert response.ok
    assert response.result == [1, {"a": None}]


def test_messages_have_value_semantics_and_dataclass_like_repr() -> None:
    hello = Hello(1, "n", "host")
    assert hello == Hello(version=1, nonce="n", role="host", software="", features=(), error="")
    assert hello != Hello(1, "n", "agent")
    assert hash(hello) == hash(Hello(1, "n", "host"))
    assert repr(hello) == (
        "Hello(version=1, nonce='n', role='host', software='', features=(), error='')"
    )
    assert repr(Response(2, error=RemoteError("x", "y"))) == (
        "Response(id=2, result=None, error=RemoteError(code='x', message='y', data=None))"
    )
    assert Request(1, "m", {}) != Response(1)
    assert not hasattr(hello, "__dict__")
    match Response(3, result=7):
        case Response(3, result):
            assert result == 7
        case _:
            pytest.fail("Response does not support positional match patterns")


def test_default_params_and_data_are_fresh_dicts() -> None:
    a, b = Request(1, "m"), Request(id=2, method="m")
    assert a.params == {} and a.params is not b.params
    e, f = Event("x"), Event(name="x")
    assert e.data == {} and e.data is not f.data
    assert e == f
