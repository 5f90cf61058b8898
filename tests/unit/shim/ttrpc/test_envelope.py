"""Tests for the Request/Response envelope, checked against protobuf encoded by hand."""

from __future__ import annotations

import pytest

from strongbox.shim.ttrpc.envelope import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    request_metadata,
    timeout_seconds,
)
from strongbox.shim.ttrpc.status import INTERNAL, INVALID_ARGUMENT, NOT_FOUND, TtrpcError
from tests.unit.shim.ttrpc.harness import request_bytes, response_bytes


def test_request_bytes_match_the_wire_format() -> None:
    wire = encode_request("containerd.task.v2.Task", "Create", b"\x0a\x01x", timeout=1.5,
                          metadata={"a": "1", "b": ["2", "3"]})
    assert wire == request_bytes("containerd.task.v2.Task", "Create", b"\x0a\x01x",
                                 timeout_nano=1_500_000_000,
                                 metadata=(("a", "1"), ("b", "2"), ("b", "3")))
    # Spelled out once, byte by byte: service "S", method "M", payload "p".
    assert encode_request("S", "M", b"p") == b"\x0a\x01S\x12\x01M\x1a\x01p"


def test_decoded_request_gives_metadata_and_timeout() -> None:
    request = decode_request(request_bytes("S", "M", b"p", timeout_nano=250_000_000,
                                           metadata=(("k", "1"), ("j", "x"), ("k", "2"))))
    assert (request.service, request.method, request.payload) == ("S", "M", b"p")
    assert request_metadata(request) == {"k": ["1", "2"], "j": ["x"]}
    assert timeout_seconds(request) == 0.25


def test_no_timeout_is_none_and_a_tiny_one_is_not_zero() -> None:
    assert timeout_seconds(decode_request(request_bytes("S", "M"))) is None
    assert decode_request(encode_request("S", "M", b"", timeout=1e-12)).timeout_nano == 1


def test_garbage_request_is_invalid_argument() -> None:
    with pytest.raises(TtrpcError) as info:
        decode_request(b"\x0a\xff\xff\xff\xff\x0f")
    assert info.value.code == INVALID_ARGUMENT
    assert info.value.message.startswith("unmarshal request error: ")


def test_ok_response_always_carries_an_empty_status_like_go() -> None:
    assert encode_response(b"out") == b"\x0a\x00\x12\x03out"
    assert encode_response(b"") == b"\x0a\x00"
    assert encode_response(b"out") == response_bytes(payload=b"out")


def test_error_response_carries_code_and_message_only() -> None:
    wire = encode_response(b"ignored", TtrpcError(NOT_FOUND, "gone"))
    assert wire == b"\x0a\x08\x08\x05\x12\x04gone"
    assert wire == response_bytes(NOT_FOUND, "gone")


def test_decode_response() -> None:
    assert decode_response(response_bytes(payload=b"out")) == b"out"
    assert decode_response(b"") == b""  # a Go server never omits status, but 0 is OK anyway
    with pytest.raises(TtrpcError) as info:
        decode_response(response_bytes(NOT_FOUND, "gone"))
    assert (info.value.code, info.value.message) == (NOT_FOUND, "gone")
    with pytest.raises(TtrpcError) as info:
        decode_response(b"\x12\x05ab")
    assert info.value.code == INTERNAL
