"""Cappedlog records what a guest (or its VMM) writes into a host file that cannot outgrow a cap.

The guest console and QEMU's own stderr are driven by the guest: a
privileged process in a container can make a console device node and write to
it as fast as it likes, and a misbehaving guest kernel can make QEMU complain
on every request. Written straight to a file, either fills the host's disk
(with the default root under /run: a RAM tmpfs). So QEMU never writes those
files itself: it writes to a socket or pipe whose other end a
:class:`Recorder` thread in the VM's owner reads, into a :class:`CappedLog`.

A capped log keeps what is worth reading after the fact:

* the **head**, the first quarter of the cap, verbatim: it holds the boot;
* then, once more arrives than fits, one marker line saying how much was
  dropped, and the **most recent tail**, up to the rest of the cap, kept in
  memory and rewritten in place at most every :data:`FLUSH_INTERVAL` s (so a
  flood costs one small write twice a second, not one per chunk).

The file never exceeds the cap. QEMU being slower than the guest only slows
the guest: when the recorder falls behind, the VMM's writes wait, and the
guest's console writes with them.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from pathlib import Path

log = logging.getLogger("strongbox.hypervisor")

#: Seconds between rewrites of a capped log's tail while output floods in.
FLUSH_INTERVAL = 0.5
#: The smallest cap that still leaves a useful head and tail.
MIN_CAP = 16 * 1024
_MARKER = "\n[strongbox: {} bytes of output dropped here; the most recent follow]\n"
_READ = 65536


class CappedLog:
    """A file of at most ``cap`` bytes: the head of what was written, a marker, the tail."""

    def __init__(self, path: Path, cap: int) -> None:
        cap = max(cap, MIN_CAP)
        self.path = path
        self.cap = cap
        self.head_cap = cap // 4
        #: Room left for the tail once the marker (at most ~80 bytes) is written.
        self.tail_cap = cap - self.head_cap - 128
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self._head = 0
        self._tail = bytearray()
        self._dropped = 0
        self._dirty = False

    def write(self, data: bytes) -> None:
        """Take more output: into the head while it has room, else into the tail."""
        room = self.head_cap - self._head
        if room > 0:
            chunk = data[:room]
            self._pwrite_all(chunk, self._head)
            self._head += len(chunk)
            data = data[room:]
        if not data:
            return
        self._tail += data
        excess = len(self._tail) - self.tail_cap
        if excess > 0:
            del self._tail[:excess]
            self._dropped += excess
        self._dirty = True

    def flush(self) -> None:
        """Rewrite the tail after the head (cheap when nothing changed)."""
        if not self._dirty:
            return
        body = bytes(self._tail)
        if self._dropped:
            body = _MARKER.format(self._dropped).encode() + body
        self._pwrite_all(body, self._head)
        os.ftruncate(self._fd, self._head + len(body))
        self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = -1

    def _pwrite_all(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            view, offset = view[written:], offset + written


class Recorder:
    """A daemon thread copying one descriptor's output into a :class:`CappedLog` until EOF.

    It owns ``fd`` (closed when done). A full disk or any other write error
    stops the recording, never the VM: the reader keeps draining so the
    VMM is not blocked, and the loss is logged once.
    """

    def __init__(self, fd: int, path: Path, cap: int) -> None:
        self._fd = fd
        self.log = CappedLog(path, cap)
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name=f"record {path.name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        failed = False
        last_flush = time.monotonic()
        try:
            while True:
                events = dict(poller.poll(FLUSH_INTERVAL * 1000))
                if self._stop_r in events:
                    break
                if self._fd in events:
                    data = os.read(self._fd, _READ)
                    if not data:
                        break
                    failed = self._record(data, failed)
                if time.monotonic() - last_flush >= FLUSH_INTERVAL:
                    failed = self._record(b"", failed, flush=True)
                    last_flush = time.monotonic()
        except OSError as exc:
            log.warning("recording %s stopped: %s", self.log.path, exc.strerror or exc)
        finally:
            try:
                self.log.close()
            except OSError:
                pass
            os.close(self._fd)
            os.close(self._stop_r)

    def _record(self, data: bytes, failed: bool, *, flush: bool = False) -> bool:
        """Write (or flush) unless recording already failed; True once it has."""
        if failed:
            return True
        try:
            if data:
                self.log.write(data)
            if flush:
                self.log.flush()
            return False
        except OSError as exc:
            log.warning("recording %s: %s (output dropped from here on)", self.log.path,
                        exc.strerror or exc)
            return True

    def join(self, timeout: float) -> bool:
        """Wait for EOF (the writer is gone) and the final flush; True when done."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 1.0) -> None:
        """Finish now: what is still unread is dropped, what was read is flushed."""
        if self._thread.is_alive():
            try:
                os.write(self._stop_w, b"x")
            except OSError:
                pass
        self._thread.join(timeout)
        if self._stop_w >= 0:
            os.close(self._stop_w)
            self._stop_w = -1
