"""The runtime's fast tests: sockets, passed descriptors, pipes and locks are all closed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.framework.fds import no_new_fds


@pytest.fixture(autouse=True)
def no_fd_leaks() -> Iterator[None]:
    with no_new_fds():
        yield
