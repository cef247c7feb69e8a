"""Task events across processes: a2a's ``TaskEventStream`` on Mailslot.

The request handler publishes every event it applies to a task here, with the task version
it produced (also the CANCELED event of a cancel recorded by a process that does not run the
task). Each event goes two ways:

* durably to the task's reply mailbox (its :class:`~mailslot_a2a.store.Route`), once per
  version (the version is the idempotency key), so the requester gets every event even if it
  was away when it happened;
* to the state store under ``("event", task_id, version)``: the task's log, which every A2A
  reader replays from a cursor of its own (:mod:`mailslot_a2a.feed`), and which
  :meth:`subscribe` follows with a watch, so a replica that does not run the task can tail it
  (the SDK's own remote resubscribe path).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import mailslot
from a2a.server.cluster import TaskEventStream, TaskVersion, VersionedEvent
from a2a.server.events.event_queue import Event
from a2a.types.a2a_pb2 import Message, StreamResponse, Task, TaskStatusUpdateEvent
from a2a.utils.proto_utils import to_stream_response

from .codec import event_of, stream_payload
from .store import INTERRUPTED, NAMESPACE, TERMINAL, TaskRecords

log = logging.getLogger("mailslot_a2a.events")

#: How long a task's event log (and a reader's cursor in it) is kept in the state store after
#: its last write: what subscribers and webhook delivery replay from.
EVENT_TTL = 7 * 24 * 3600.0


def _key(version: TaskVersion) -> str:
    value = version._value  # the store's own token (a state revision)
    return f"{int(value):020d}"


class MailslotEventStream(TaskEventStream):
    def __init__(
        self, ms: mailslot.Mailslot, *, namespace: str = NAMESPACE, sender: str | None = None
    ) -> None:
        self.ms = ms
        self.records = TaskRecords(ms, namespace=namespace)
        self.sender = sender

    async def publish(self, task_id: str, event: VersionedEvent) -> None:
        response = to_stream_response(event.event)
        await self.deliver(task_id, response, version=event.version)
        if not event.version.is_missing:
            await self.records.state.put(
                ("event", task_id, _key(event.version)), response.SerializeToString(), ttl=EVENT_TTL
            )

    async def deliver(self, task_id: str, response: StreamResponse, *, version: TaskVersion) -> None:
        """Mail one event to the task's reply mailbox (nothing if the task has no route)."""
        route = await self.records.route(task_id)
        if route is None:
            log.debug("task %s has no route; event not mailed", task_id)
            return
        await self.ms.send(
            route.reply_to,
            stream_payload(response),
            correlation_id=task_id,
            sender=self.sender,
            idempotency_key=None if version.is_missing else f"a2a-event:{task_id}:{_key(version)}",
        )

    async def subscribe(self, task_id: str, *, after: TaskVersion) -> AsyncGenerator[VersionedEvent, None]:
        async with self.records.state.watch(prefix=("event", task_id), include_existing=True) as changes:
            async for change in changes:
                if change.value is None:
                    continue
                version = TaskVersion(int(change.key[-1]))
                if not version.is_after(after):
                    continue
                response = StreamResponse()
                response.ParseFromString(change.value)
                yield VersionedEvent(event=event_of(response), version=version)

    async def destroy(self, task_id: str) -> None:
        # The log expires by itself (EVENT_TTL); a tail still reading it must see the end.
        return None


def is_final(event: Event) -> bool:
    """Whether a stream ends after ``event``: a Message, or a terminal or interrupted state."""
    if isinstance(event, Message):
        return True
    if isinstance(event, (Task, TaskStatusUpdateEvent)):
        return event.status.state in TERMINAL | INTERRUPTED
    return False


__all__ = ["EVENT_TTL", "MailslotEventStream", "is_final"]
