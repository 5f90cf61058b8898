"""Tests for the gRPC status codes and TtrpcError."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from strongbox.shim.ttrpc import status
from strongbox.shim.ttrpc.status import TtrpcError

# The gRPC code table (shared/reference/containerd-shim-v2.md section 2).
GRPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}


@pytest.mark.parametrize(("name", "code"), GRPC_CODES.items())
def test_codes_are_the_grpc_codes(name: str, code: int) -> None:
    assert getattr(status, name) == code
    assert status.code_name(code) == name


def test_unknown_code_has_a_printable_name() -> None:
    assert status.code_name(99) == "CODE(99)"


@pytest.mark.parametrize(("helper", "code"), [
    (status.cancelled, 1),
    (status.invalid_argument, 3),
    (status.deadline_exceeded, 4),
    (status.not_found, 5),
    (status.already_exists, 6),
    (status.failed_precondition, 9),
    (status.unimplemented, 12),
    (status.internal, 13),
    (status.unavailable, 14),
])
def test_helpers_build_errors_with_their_code(
    helper: Callable[[str], TtrpcError], code: int
) -> None:
    err = helper("task abc does not exist")
    assert isinstance(err, TtrpcError)
    assert (err.code, err.message, str(err)) == (code, "task abc does not exist",
                                                 "task abc does not exist")


def test_repr_names_the_code() -> None:
    assert repr(status.not_found("x")) == "TtrpcError(NOT_FOUND, 'x')"
