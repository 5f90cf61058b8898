"""Events: task events, in order, to containerd's ttrpc events service.

containerd 1.6 gives the shim its ttrpc address in ``$TTRPC_ADDRESS``; the
shim calls ``containerd.services.events.ttrpc.v1.Events/Forward`` with an
envelope per event (1.6 ``runtime/v2/shim/publisher.go``). One queue, one
sender: an event is retried (back-off 1 s x attempt, at most 5 attempts,
5 s per call) before the next is sent, so containerd sees them in the order
they happened — create before start before exit before delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from google.protobuf.message import Message

from strongbox.shim import convert
from strongbox.shim.proto import events_pb2 as ev
from strongbox.shim.proto import mount_pb2
from strongbox.shim.ttrpc.client import Client
from strongbox.shim.ttrpc.status import TtrpcError

log = logging.getLogger("strongbox.shim.events")

EVENTS_SERVICE = "containerd.services.events.ttrpc.v1.Events"
CALL_TIMEOUT = 5.0
MAX_ATTEMPTS = 5


class Publisher:
    """A FIFO of events and the task that forwards them."""

    def __init__(self, address: str | None, namespace: str) -> None:
        self.address = address
        self.namespace = namespace
        self._queue: asyncio.Queue[tuple[Message, float]] = asyncio.Queue()
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent: list[str] = []  # topics, for diagnostics

    def publish(self, event: Message) -> None:
        self._queue.put_nowait((event, time.time()))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            event, when = await self._queue.get()
            await self._send(event, when)
            self._queue.task_done()

    async def _send(self, event: Message, when: float) -> None:
        topic = convert.event_topic(event)
        if not self.address:
            log.info("event %s (no TTRPC_ADDRESS: not forwarded)", topic)
            return
        request = convert.envelope(self.namespace, event, when)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                if self._client is None:
                    self._client = await Client.connect(self.address)
                await self._client.call(EVENTS_SERVICE, "Forward", request.SerializeToString(),
                                        timeout=CALL_TIMEOUT)
                self.sent.append(topic)
                return
            except (TtrpcError, OSError) as exc:
                log.warning("forwarding %s failed (attempt %d): %s", topic, attempt, exc)
                if self._client is not None:
                    await self._client.close()
                    self._client = None
                await asyncio.sleep(attempt * 1.0)
        log.error("dropped event %s after %d attempts", topic, MAX_ATTEMPTS)

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued event was sent (or given up on)."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
        if self._client is not None:
            await self._client.close()


class TaskEvents:
    """The task manager's :class:`~strongbox.shim.tasks.EventSink`, as containerd events."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def _emit(self, event: Message) -> None:
        self.publisher.publish(event)

    def task_create(self, container_id: str, bundle: str, rootfs: list[dict[str, Any]],
                    stdio: tuple[str, str, str], terminal: bool, pid: int) -> None:
        mounts = [mount_pb2.Mount(type=m.get("type", ""), source=m.get("source", ""),
                                  target=m.get("target", ""), options=m.get("options", []))
                  for m in rootfs]
        self._emit(ev.TaskCreate(
            container_id=container_id, bundle=bundle, rootfs=mounts, pid=pid,
            io=ev.TaskIO(stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], terminal=terminal)))

    def task_start(self, container_id: str, pid: int) -> None:
        self._emit(ev.TaskStart(container_id=container_id, pid=pid))

    def task_exit(self, container_id: str, exec_id: str, pid: int, status: int,
                  exited_at: float) -> None:
        self._emit(ev.TaskExit(container_id=container_id, id=exec_id or container_id, pid=pid,
                               exit_status=status, exited_at=convert.timestamp(exited_at)))

    def task_delete(self, container_id: str, exec_id: str, pid: int, status: int,
                    exited_at: float) -> None:
        self._emit(ev.TaskDelete(container_id=container_id, id=exec_id, pid=pid,
                                 exit_status=status, exited_at=convert.timestamp(exited_at)))

    def task_oom(self, container_id: str) -> None:
        self._emit(ev.TaskOOM(container_id=container_id))

    def exec_added(self, container_id: str, exec_id: str) -> None:
        self._emit(ev.TaskExecAdded(container_id=container_id, exec_id=exec_id))

    def exec_started(self, container_id: str, exec_id: str, pid: int) -> None:
        self._emit(ev.TaskExecStarted(container_id=container_id, exec_id=exec_id, pid=pid))

    def task_paused(self, container_id: str) -> None:
        self._emit(ev.TaskPaused(container_id=container_id))

    def task_resumed(self, container_id: str) -> None:
        self._emit(ev.TaskResumed(container_id=container_id))
