"""A task's events for any number of readers: its stored log, read with a cursor per reader.

Every event of a task is kept in the state store under ``("event", task_id, version)``
(:mod:`mailslot_a2a.events` writes it). Readers do not take events from a shared mailbox, where
two of them (an HTTP ``SubscribeToTask`` and the front's webhook delivery, say) would split
the events between them; each replays the log from its own cursor,
``("cursor", task_id, reader)``, the last version it was handed. So every reader gets every
event once, also those that happened while it was away, and a reader that comes back under
the same name goes on where it stopped. A reader with no name replays the whole log.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import mailslot
from a2a.server.events.event_queue import Event
from a2a.types.a2a_pb2 import StreamResponse

from .codec import event_of
from .events import EVENT_TTL, is_final
from .store import NAMESPACE


def version_of(key: tuple[str, ...]) -> int:
    return int(key[-1])


class TaskFeed:
    """The event log of the tasks of one namespace, with the readers' cursors."""

    def __init__(self, ms: mailslot.Mailslot, *, namespace: str = NAMESPACE) -> None:
        self.state = ms.state(namespace)

    async def cursor(self, task_id: str, reader: str | None) -> int:
        """The last version ``reader`` was handed (0: none yet, or no name)."""
        if reader is None:
            return 0
        entry = await self.state.get(("cursor", task_id, reader))
        return 0 if entry is None else int(entry.value)

    async def advance(self, task_id: str, reader: str | None, version: int) -> None:
        if reader is not None:
            await self.state.put(("cursor", task_id, reader), str(version).encode(), ttl=EVENT_TTL)

    async def pending(self, task_id: str, reader: str | None) -> bool:
        """Whether the log holds an event ``reader`` was not handed yet."""
        after = await self.cursor(task_id, reader)
        return any(version_of(k) > after for k in await self.state.keys(prefix=("event", task_id)))

    async def replay(self, task_id: str, *, reader: str | None) -> AsyncGenerator[Event, None]:
        """The events stored after ``reader``'s cursor, oldest first, then the end: for a task
        that has ended, whose log grows no more (and may lack a last event that was saved but
        never published, e.g. a failure a2a recorded itself)."""
        after = await self.cursor(task_id, reader)
        for entry in await self.state.items(prefix=("event", task_id)):
            version = version_of(entry.key)
            if version <= after:
                continue
            response = StreamResponse()
            response.ParseFromString(entry.value)
            await self.advance(task_id, reader, version)
            yield event_of(response)

    async def read(
        self,
        task_id: str,
        *,
        reader: str | None,
        ack_first: bool = True,
        timeout: float | None = None,
    ) -> AsyncGenerator[Event, None]:
        """The task's events after ``reader``'s cursor, oldest first, until the task ends or
        waits for input. The cursor moves past an event as it is handed over (``ack_first``),
        or only when the reader asks for the next one (a reader that dies with an event in
        hand gets it again)."""
        after = await self.cursor(task_id, reader)
        async with self.state.watch(prefix=("event", task_id), include_existing=True) as changes:
            while True:
                change = await changes.next(timeout=timeout)
                if change.value is None or version_of(change.key) <= after:
                    continue
                after = version_of(change.key)
                response = StreamResponse()
                response.ParseFromString(change.value)
                event = event_of(response)
                if ack_first:
                    await self.advance(task_id, reader, after)
                yield event
                if not ack_first:
                    await self.advance(task_id, reader, after)
                if is_final(event):
                    return


__all__ = ["TaskFeed"]
