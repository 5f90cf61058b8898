"""Portio reads the host's port and writes to it: PortInput, and PortOutput's ordered queue.

Under emulation every copy of a stream's bytes and every turn of the
agent's loop is expensive, so both are built to take much per system call
and not to copy:

* a virtio-serial read returns one of the driver's receive buffers (a page)
  at most, so :class:`PortInput` reads with ``readv`` into page-sized slices
  of one buffer: the kernel fills them in order, one receive buffer each, and
  stops at the first short one, so one call takes up to 256 KiB, contiguous;

* items are whole frames, or a DATA frame as its header and its payload
  (the bytes object read from the process, never joined to its header);
  they go to the port with ``writev`` (the virtio-serial driver takes up to
  32 KiB per write, so a big payload is written through a memoryview of the
  rest, not re-sliced);
"""

from __future__ import annotations

import errno
import os

_READ_SIZE = 256 * 1024
_PAGE = 4096
#: At most this many queued items go to one writev() of the port.
_IOV_MAX = 64


class PortBroken(Exception):
    """The port failed under a write; the host session is over."""


class PortInput:
    """The port's reads, into one reusable buffer."""

    __slots__ = ("_fd", "_iov", "_view")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._view = memoryview(bytearray(_READ_SIZE))
        self._iov = [self._view[at:at + _PAGE] for at in range(0, _READ_SIZE, _PAGE)]

    def read(self) -> memoryview | None:
        """What the port has: a view valid until the next read (empty at EOF), or None
        if it has nothing now. OSError as the read raised it."""
        try:
            n = os.readv(self._fd, self._iov)
        except (BlockingIOError, InterruptedError):
            return None
        return self._view[:n]


class PortOutput:
    """An ordered, copy-free queue of bytes for the host, and its writer."""

    __slots__ = ("_fd", "_items", "_offset")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._items: list[bytes] = []
        self._offset = 0  # bytes of _items[0] already written

    def __bool__(self) -> bool:
        return bool(self._items)

    def append(self, data: bytes) -> None:
        if data:
            self._items.append(data)

    def extend(self, items: list[bytes]) -> None:
        self._items.extend(item for item in items if item)

    def clear(self) -> None:
        self._items.clear()
        self._offset = 0

    def flush(self) -> None:
        """Write as much as the port takes now; raises :class:`PortBroken` if it failed.

        The driver takes at most 32 KiB per write, so one writev() moves a
        fraction of a big frame: keep writing until the port is full or the
        queue empty, rather than wait a turn of the loop (and a poll) for each.
        """
        while self._items and self._write_some():
            pass

    def _write_some(self) -> bool:
        """One writev(); False if the port took nothing (it is full)."""
        items = self._items
        offset = self._offset
        iov = [memoryview(items[0])[offset:] if offset else items[0], *items[1:_IOV_MAX]]
        try:
            n = os.writev(self._fd, iov)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                return False
            raise PortBroken(str(exc)) from exc
        if n == 0:
            return False
        done = 0
        n += offset
        for item in items:
            if n < len(item):
                break
            n -= len(item)
            done += 1
        del items[:done]
        self._offset = n
        return True
