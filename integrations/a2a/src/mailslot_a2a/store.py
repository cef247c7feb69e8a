"""A2A task stores on Mailslot's state store (``ms.state(namespace)``).

Tasks live under ``("task", task_id)`` as serialized protobuf, next to their route
(``("route", task_id)``: which agent runs it, which mailbox gets its events). Every process that
talks to the broker sees the same tasks: the client that queued a task reads it while the agent
is offline, replicas of one agent share them, and a restarted agent finds them again.

:class:`VersionedMailslotTaskStore` is the one the runner and the client use: a save is checked
against the revision it was read at (the state store's ``expect_revision``), so two replicas
writing one task cannot overwrite each other silently, and a cancel recorded by a client is
seen by the replica running the task at its next save. :class:`MailslotTaskStore` is the
plain ``TaskStore`` (last write wins) for code that wants that interface.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import mailslot
from a2a.server.cluster import ConcurrentTaskModificationError, StoredTask, TaskVersion, VersionedTaskStore
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.tasks import InMemoryTaskStore, PushNotificationConfigStore, TaskStore
from a2a.server.tasks.push_notification_config_store import normalize_push_notification_config
from a2a.types.a2a_pb2 import ListTasksRequest, ListTasksResponse, Task, TaskPushNotificationConfig, TaskState

#: Default state namespace of A2A tasks.
NAMESPACE = "a2a"

TERMINAL = frozenset(
    {
        TaskState.TASK_STATE_COMPLETED,
        TaskState.TASK_STATE_CANCELED,
        TaskState.TASK_STATE_FAILED,
        TaskState.TASK_STATE_REJECTED,
    }
)
INTERRUPTED = frozenset({TaskState.TASK_STATE_INPUT_REQUIRED, TaskState.TASK_STATE_AUTH_REQUIRED})


#: How long a cancel request for a running task is kept (the replica acts on it at once).
CANCEL_REQUEST_TTL = 60.0


@dataclass(frozen=True)
class Route:
    """Where a task's requests go (the agent's address) and its events (the reply mailbox)."""

    agent: str
    reply_to: str

    def encode(self) -> bytes:
        return json.dumps({"agent": self.agent, "reply_to": self.reply_to}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Route:
        data = json.loads(raw)
        return cls(agent=str(data["agent"]), reply_to=str(data["reply_to"]))


def _decode(raw: bytes) -> Task:
    task = Task()
    task.ParseFromString(raw)
    return task


class TaskRecords:
    """The keys of one namespace: tasks and their routes. Shared by both stores, the runner
    and the client side."""

    def __init__(self, ms: mailslot.Mailslot, *, namespace: str = NAMESPACE) -> None:
        self.state = ms.state(namespace)

    async def read(self, task_id: str) -> tuple[Task, int] | None:
        entry = await self.state.get(("task", task_id))
        return None if entry is None else (_decode(entry.value), entry.revision)

    async def write(self, task: Task, *, expect_revision: int | None) -> int:
        return await self.state.put(
            ("task", task.id), task.SerializeToString(), expect_revision=expect_revision
        )

    async def delete(self, task_id: str) -> None:
        await self.state.delete(("task", task_id))
        await self.state.delete(("route", task_id))

    async def all(self) -> list[Task]:
        return [_decode(e.value) for e in await self.state.items(prefix=("task",))]

    async def set_route(self, task_id: str, route: Route) -> None:
        await self.state.put(("route", task_id), route.encode())

    async def route(self, task_id: str) -> Route | None:
        entry = await self.state.get(("route", task_id))
        return None if entry is None else Route.decode(entry.value)

    # A replica running a task says so under ("running", task_id), a lease it renews while it
    # runs; a cancel for such a task is asked of it under ("cancel", task_id), which the
    # replica watches, so its executor's cancel() runs at once (see the runner).

    async def set_running(self, task_id: str, *, ttl: float) -> None:
        await self.state.put(("running", task_id), b"1", ttl=ttl)

    async def clear_running(self, task_id: str) -> None:
        await self.state.delete(("running", task_id))

    async def is_running(self, task_id: str) -> bool:
        return await self.state.get(("running", task_id)) is not None

    async def ask_cancel(self, task_id: str) -> None:
        await self.state.put(("cancel", task_id), b"1", ttl=CANCEL_REQUEST_TTL)

    async def listing(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        # The SDK's own filtering, ordering and page tokens, over a snapshot of the namespace.
        snapshot = InMemoryTaskStore()
        for task in await self.all():
            await snapshot.save(task, context)
        return await snapshot.list(params, context)


class MailslotTaskStore(TaskStore):
    """A2A ``TaskStore`` on Mailslot state: last write wins."""

    def __init__(self, ms: mailslot.Mailslot, *, namespace: str = NAMESPACE) -> None:
        self.records = TaskRecords(ms, namespace=namespace)

    async def save(self, task: Task, context: ServerCallContext) -> None:
        await self.records.write(task, expect_revision=None)

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        found = await self.records.read(task_id)
        return None if found is None else found[0]

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        return await self.records.listing(params, context)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        await self.records.delete(task_id)


def _revision(version: TaskVersion) -> int:
    value: Any = version._value  # the store's own token: a state revision (0 = none yet)
    return int(value)


class VersionedMailslotTaskStore(VersionedTaskStore):
    """A2A ``VersionedTaskStore`` on Mailslot state: versions are state revisions."""

    def __init__(self, ms: mailslot.Mailslot, *, namespace: str = NAMESPACE) -> None:
        self.records = TaskRecords(ms, namespace=namespace)

    async def save(
        self,
        task: Task,
        *,
        event: Event | None,
        prev: Task | None,
        prev_version: TaskVersion,
        context: ServerCallContext,
    ) -> TaskVersion:
        if task.status.state == TaskState.TASK_STATE_CANCELED:
            return await self._cancel(task)
        try:
            rev = await self.records.write(task, expect_revision=_revision(prev_version))
        except mailslot.StateConflict:
            raise ConcurrentTaskModificationError(task.id) from None
        return TaskVersion(rev)

    async def _cancel(self, task: Task) -> TaskVersion:
        # A cancel overwrites any non-terminal state, whoever wrote it last.
        while True:
            found = await self.records.read(task.id)
            if found is None or found[0].status.state in TERMINAL:
                raise ConcurrentTaskModificationError(task.id)
            try:
                return TaskVersion(await self.records.write(task, expect_revision=found[1]))
            except mailslot.StateConflict:
                continue

    async def get(self, task_id: str, context: ServerCallContext) -> StoredTask | None:
        found = await self.records.read(task_id)
        return None if found is None else StoredTask(found[0], TaskVersion(found[1]))

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        return await self.records.listing(params, context)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        await self.records.delete(task_id)


__all__ = [
    "INTERRUPTED",
    "NAMESPACE",
    "TERMINAL",
    "MailslotPushConfigStore",
    "MailslotTaskStore",
    "Route",
    "TaskRecords",
    "VersionedMailslotTaskStore",
]


class MailslotPushConfigStore(PushNotificationConfigStore):
    """A2A push-notification configs on Mailslot state, under ``("push", task_id, config_id)``:
    a front that restarts (or another front) still knows every task's webhooks."""

    def __init__(self, ms: mailslot.Mailslot, *, namespace: str = NAMESPACE) -> None:
        self.state = ms.state(namespace)

    async def set_info(
        self, task_id: str, notification_config: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        config = normalize_push_notification_config(task_id, notification_config)
        await self.state.put(("push", task_id, config.id), config.SerializeToString())
        return config

    async def get_info(self, task_id: str, context: ServerCallContext) -> list[TaskPushNotificationConfig]:
        out = []
        for entry in await self.state.items(prefix=("push", task_id)):
            config = TaskPushNotificationConfig()
            config.ParseFromString(entry.value)
            out.append(config)
        return out

    async def get_info_for_dispatch(self, task_id: str) -> list[TaskPushNotificationConfig]:
        return await self.get_info(task_id, ServerCallContext())

    async def delete_info(
        self, task_id: str, context: ServerCallContext, config_id: str | None = None
    ) -> None:
        if config_id is None:
            await self.state.purge(prefix=("push", task_id))
        else:
            await self.state.delete(("push", task_id, config_id))

    async def tasks(self) -> list[str]:
        """Every task that has a config."""
        return sorted({key[1] for key in await self.state.keys(prefix=("push",))})
