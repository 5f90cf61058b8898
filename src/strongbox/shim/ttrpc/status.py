"""A status is the outcome of one ttrpc call: a gRPC code and a message.

ttrpc carries gRPC's ``google.rpc.Status`` in every Response, and containerd maps
the codes to and from its errdefs (NotFound, AlreadyExists, FailedPrecondition,
Unimplemented, ...), so a shim that wants containerd to see "not found" raises
``not_found(...)`` from its handler and the server puts code 5 on the wire.

Errors of this package::

    TtrpcError            a call ended with a non-OK status (.code, .message);
     │                    raised by handlers to choose the status, and by the
     │                    client with the status the server (or the client
     │                    itself: timeout, lost connection) decided
     └── MessageTooLarge  a frame's length exceeded MAX_MESSAGE; the frame was
                          skipped and only its stream fails (frame.py)
    FramingError          the byte stream itself is broken (truncated frame);
                          the connection cannot continue (frame.py)

The client reports "connection lost" and "we closed the client" both as
UNAVAILABLE, told apart by the message (``ttrpc: connection lost: ...`` versus
``ttrpc: client closed``). TtrpcError is a wire status, not a strongbox error:
the service layer translates StrongboxError families into these codes.
"""

from __future__ import annotations

OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16

CODE_NAMES: dict[int, str] = {
    OK: "OK",
    CANCELLED: "CANCELLED",
    UNKNOWN: "UNKNOWN",
    INVALID_ARGUMENT: "INVALID_ARGUMENT",
    DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
    NOT_FOUND: "NOT_FOUND",
    ALREADY_EXISTS: "ALREADY_EXISTS",
    PERMISSION_DENIED: "PERMISSION_DENIED",
    RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
    FAILED_PRECONDITION: "FAILED_PRECONDITION",
    ABORTED: "ABORTED",
    OUT_OF_RANGE: "OUT_OF_RANGE",
    UNIMPLEMENTED: "UNIMPLEMENTED",
    INTERNAL: "INTERNAL",
    UNAVAILABLE: "UNAVAILABLE",
    DATA_LOSS: "DATA_LOSS",
    UNAUTHENTICATED: "UNAUTHENTICATED",
}
"""Code -> gRPC name, for messages and logs."""


def code_name(code: int) -> str:
    """The gRPC name of ``code``, e.g. "NOT_FOUND"; never raises for an unknown value."""
    return CODE_NAMES.get(code, f"CODE({code})")


class TtrpcError(Exception):
    """A call ended with a non-OK gRPC status; ``str(err)`` is the status message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({code_name(self.code)}, {self.message!r})"


def cancelled(message: str) -> TtrpcError:
    """The operation was cancelled (containerd errdefs: Canceled)."""
    return TtrpcError(CANCELLED, message)


def invalid_argument(message: str) -> TtrpcError:
    """The request is malformed whatever the state (errdefs: InvalidArgument)."""
    return TtrpcError(INVALID_ARGUMENT, message)


def deadline_exceeded(message: str) -> TtrpcError:
    """The deadline expired before the operation finished (errdefs: DeadlineExceeded)."""
    return TtrpcError(DEADLINE_EXCEEDED, message)


def not_found(message: str) -> TtrpcError:
    """The named object does not exist (errdefs: NotFound)."""
    return TtrpcError(NOT_FOUND, message)


def already_exists(message: str) -> TtrpcError:
    """The object to create exists already (errdefs: AlreadyExists)."""
    return TtrpcError(ALREADY_EXISTS, message)


def failed_precondition(message: str) -> TtrpcError:
    """The object is in the wrong state for the operation (errdefs: FailedPrecondition)."""
    return TtrpcError(FAILED_PRECONDITION, message)


def unimplemented(message: str) -> TtrpcError:
    """The operation is not supported (errdefs: NotImplemented)."""
    return TtrpcError(UNIMPLEMENTED, message)


def internal(message: str) -> TtrpcError:
    """An invariant of ours broke (errdefs maps it to Unknown)."""
    return TtrpcError(INTERNAL, message)


def unavailable(message: str) -> TtrpcError:
    """The service cannot answer now; retrying may help (errdefs: Unavailable)."""
    return TtrpcError(UNAVAILABLE, message)
