"""The launcher's pipe protocol and the error type that travels over it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from strongbox.container.errors import ContainerError
from strongbox.container.sync import ChildEnd, read_exec_result, wait_ready


class Pipes:
    """Both pipes; ``close`` remembers what is closed so cleanup never closes a reused number."""

    def __init__(self) -> None:
        report_r, report_w = os.pipe()
        start_r, start_w = os.pipe()
        self.child = ChildEnd(report_w, start_r)
        self.report_r = report_r
        self.start_w = start_w
        self.open = {report_r, report_w, start_r, start_w}

    def close(self, fd: int) -> None:
        self.open.discard(fd)
        os.close(fd)


@pytest.fixture
def pipes() -> Iterator[Pipes]:
    p = Pipes()
    yield p
    for fd in list(p.open):
        p.close(fd)


def test_ready_then_start(pipes: Pipes) -> None:
    child, report_r, start_w = pipes.child, pipes.report_r, pipes.start_w
    os.write(start_w, b"s")
    assert child.ready_and_wait(["a note", "another\tone"]) is True
    pipes.open.discard(child.start_fd)  # ready_and_wait closed it
    assert wait_ready(report_r) == ["a note", "another one"]


def test_parent_gone_means_do_not_start(pipes: Pipes) -> None:
    child, start_w = pipes.child, pipes.start_w
    pipes.close(start_w)
    assert child.ready_and_wait() is False
    pipes.open.discard(child.start_fd)


def test_setup_error_is_raised_in_the_parent(pipes: Pipes) -> None:
    child, report_r = pipes.child, pipes.report_r
    child.setup_failed(ContainerError("mount", "mount /proc:\tOperation not permitted", 1))
    pipes.close(child.report_fd)
    with pytest.raises(ContainerError) as info:
        wait_ready(report_r)
    assert (info.value.stage, info.value.errno) == ("mount", 1)
    assert str(info.value) == "mount /proc: Operation not permitted"


def test_silent_death_during_setup(pipes: Pipes) -> None:
    child, report_r = pipes.child, pipes.report_r
    pipes.close(child.report_fd)
    with pytest.raises(ContainerError, match="exited during setup") as info:
        wait_ready(report_r)
    assert info.value.errno is None


def test_exec_result(pipes: Pipes) -> None:
    child, report_r = pipes.child, pipes.report_r
    child.exec_failed(ContainerError("exec", 'exec "x": executable file not found in $PATH'))
    pipes.close(child.report_fd)
    assert read_exec_result(report_r, 1) == 'exec "x": executable file not found in $PATH'


def test_exec_success_is_eof_and_silence_is_a_timeout(
        pipes: Pipes) -> None:
    child, report_r = pipes.child, pipes.report_r
    with pytest.raises(ContainerError, match=r"no exec result within 0\.05s"):
        read_exec_result(report_r, 0.05)
    pipes.close(child.report_fd)
    assert read_exec_result(report_r, 1) is None


def test_error_messages_are_one_line() -> None:
    err = ContainerError("x", "first\nsecond")
    assert str(err) == "first second"
    from_os = ContainerError.from_os("mount", "mount /sys", PermissionError(1, "ignored"))
    assert (str(from_os), from_os.errno) == ("mount /sys: Operation not permitted", 1)
