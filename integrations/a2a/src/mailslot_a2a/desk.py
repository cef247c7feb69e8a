"""The requester's side of A2A over Mailslot: a request handler that queues instead of runs.

:class:`TaskDesk` is a2a's own ``DefaultRequestHandler`` over the shared Mailslot task store,
with the one thing that needs the agent, ``message/send``, replaced by "write the task as
SUBMITTED, then put the request in the agent's mailbox". So it answers at once whether the
agent is online or not, and everything else (``tasks/get``, ``tasks/list``, ``tasks/cancel``
of a task that is queued or running elsewhere) is the SDK's code reading and writing the shared
store. Streams (``message/stream``, ``tasks/resubscribe``) replay the task's event log from the
reader's own cursor (:mod:`mailslot_a2a.feed`), so a subscriber that was away gets what it
missed, each event once, and no reader takes events from another (the front's webhook
delivery, an HTTP subscriber and a Mailslot client can all follow one task). The events are
also mailed to the task's reply mailbox, for readers that speak Mailslot and not A2A.

Both the client transport (:mod:`mailslot_a2a.transport`) and the HTTP front
(:mod:`mailslot_a2a.front`) are a ``TaskDesk`` behind a different door.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncGenerator

import mailslot
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.cluster import TaskVersion, VersionedEvent
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.tasks import PushNotificationConfigStore
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    CancelTaskRequest,
    Message,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
)
from a2a.utils.errors import (
    InvalidParamsError,
    InvalidRequestError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from a2a.utils.task import apply_history_length

from .cards import BINDING
from .codec import request_payload
from .events import MailslotEventStream
from .feed import TaskFeed
from .store import NAMESPACE, TERMINAL, Route, VersionedMailslotTaskStore

#: ``ServerCallContext.state`` key naming the agent a request is for (the HTTP front sets it
#: from the URL); without it the desk's ``agent``.
AGENT_STATE_KEY = "mailslot_agent"
#: ``ServerCallContext.state`` key naming the reader of a stream, whose cursor it moves: the
#: client transport sets its requester, the HTTP front the ``X-Mailslot-Subscriber`` header.
#: Without one a stream replays the task's whole log.
SUBSCRIBER_STATE_KEY = "mailslot_subscriber"
#: How long a cancel of a running task waits for the replica running it to cancel it, before
#: it records CANCELED itself (the replica may have died without saying so).
CANCEL_WAIT = 5.0
#: Bytes of a mail's size kept for Mailslot's headers when checking a request's size.
HEADER_ALLOWANCE = 4096


class _NotHere(AgentExecutor):
    """The desk runs no agent: tasks run in the agent's own process, from its mailbox."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise UnsupportedOperationError(message="tasks run at the agent, not at the requester")

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise UnsupportedOperationError(message="tasks run at the agent, not at the requester")


def reply_address(requester: str, task_id: str) -> str:
    """The mailbox a task's events wait in: the requester's, one per task."""
    return f"{requester}.t-{task_id}"


def _desk_card() -> AgentCard:
    return AgentCard(
        name="mailslot-a2a-desk",
        description="queues A2A tasks in Mailslot mailboxes",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url="mailslot://", protocol_binding=BINDING, protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="queue", name="queue", description="queue a task", tags=["mailslot"])],
    )


class TaskDesk(DefaultRequestHandler):
    """A2A request handler for a requester: sends are queued in the agent's mailbox.

    ``requester`` names the requester's mailboxes (a task's events go to
    ``<requester>.t-<task id>``); ``agent`` is the agent requests go to unless the call
    context names one (:data:`AGENT_STATE_KEY`). Subclasses hook :meth:`admit` (refuse an
    agent before anything is written) and :meth:`submitted` (the HTTP front starts webhook
    delivery there).
    """

    def __init__(
        self,
        ms: mailslot.Mailslot,
        *,
        requester: str,
        agent: str | None = None,
        namespace: str = NAMESPACE,
        push_config_store: PushNotificationConfigStore | None = None,
        receive_timeout: float | None = None,
        cancel_wait: float = CANCEL_WAIT,
    ) -> None:
        self.ms = ms
        self.requester = requester
        self.agent = agent
        self.store = VersionedMailslotTaskStore(ms, namespace=namespace)
        self.events = MailslotEventStream(ms, namespace=namespace, sender=requester)
        self.feed = TaskFeed(ms, namespace=namespace)
        self.receive_timeout = receive_timeout
        self.cancel_wait = cancel_wait
        super().__init__(
            _NotHere(),
            self.store,
            _desk_card(),
            push_config_store=push_config_store,
            event_stream=self.events,
        )

    def agent_for(self, context: ServerCallContext) -> str:
        agent = context.state.get(AGENT_STATE_KEY) or self.agent
        if not agent:
            raise InvalidParamsError(message="no agent named for this request")
        return str(agent)

    def reader_for(self, context: ServerCallContext) -> str | None:
        reader = context.state.get(SUBSCRIBER_STATE_KEY)
        return str(reader) if reader else None

    # -- send ---------------------------------------------------------------------------------

    async def submit(self, params: SendMessageRequest, context: ServerCallContext) -> Task:
        """Write the task as SUBMITTED (or check the one the message continues), then queue
        the request in the agent's mailbox. A request that cannot be queued leaves nothing."""
        agent = self.agent_for(context)
        message = Message()
        message.CopyFrom(params.message)
        if message.role == Role.ROLE_UNSPECIFIED:
            message.role = Role.ROLE_USER
        if not message.message_id:
            message.message_id = uuid.uuid4().hex
        request = SendMessageRequest()
        request.CopyFrom(params)
        continuing = bool(message.task_id)
        if continuing:
            stored = await self.store.get(message.task_id, context)
            if stored is None:
                raise TaskNotFoundError(message=f"Task {message.task_id} not found")
            if stored.task.status.state in TERMINAL:
                raise InvalidParamsError(message=f"Task {message.task_id} is in a terminal state")
            task = stored.task
            message.context_id = message.context_id or task.context_id
        else:
            message.task_id = str(uuid.uuid4())
            message.context_id = message.context_id or str(uuid.uuid4())
            task = Task(
                id=message.task_id,
                context_id=message.context_id,
                status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
            )
            task.status.timestamp.GetCurrentTime()
            task.history.append(message)
        request.message.CopyFrom(message)
        request.configuration.ClearField("task_push_notification_config")  # honoured here, not at the agent
        payload = request_payload(request)
        reply_to = reply_address(self.requester, task.id)
        # Everything that can be refused is refused before anything is written; a failure
        # after the first write undoes it.
        await self.admit(agent, context)
        self.ms.inspect(reply_to)
        size = max(len(json.dumps(payload).encode()), len(task.SerializeToString()))
        limit = min(self.ms.max_payload - HEADER_ALLOWANCE, self.store.records.state.max_value_size)
        if size > limit:
            raise InvalidRequestError(message=f"Payload too large: {size} bytes, the limit is {limit}")
        if not continuing:
            await self.store.records.set_route(task.id, Route(agent=agent, reply_to=reply_to))
            try:
                version = await self.store.save(
                    task, event=task, prev=None, prev_version=TaskVersion.MISSING, context=context
                )
                await self.events.publish(task.id, VersionedEvent(event=task, version=version))
            except BaseException:
                await self._undo(task.id)
                raise
        try:
            await self.ms.send(
                agent,
                payload,
                correlation_id=task.id,
                reply_to=reply_to,
                sender=self.requester,
                idempotency_key=f"a2a-send:{message.message_id}",
            )
        except BaseException:
            if not continuing:
                await self._undo(task.id)
            raise
        if params.configuration.HasField("task_push_notification_config") and self._push_config_store:
            config = TaskPushNotificationConfig()
            config.CopyFrom(params.configuration.task_push_notification_config)
            config.task_id = task.id
            await self._push_config_store.set_info(task.id, config, context)
        await self.submitted(task, context)
        return task

    async def admit(self, agent: str, context: ServerCallContext) -> None:
        """Refuse a request for ``agent`` by raising an A2A error; nothing is written yet."""
        self.ms.inspect(agent)  # a malformed address raises InvalidAddress

    async def submitted(self, task: Task, context: ServerCallContext) -> None:
        """Called once a task (or a message continuing one) is queued."""

    async def _undo(self, task_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.store.records.delete(task_id)

    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task | Message:
        task = await self.submit(params, context)
        if params.configuration.return_immediately:
            return apply_history_length(task, params.configuration)
        last: Event = task
        async for event in self.follow(task.id, reader=self.reader_for(context)):
            last = event
        if isinstance(last, Message):
            return last
        stored = await self.store.get(task.id, context)
        return apply_history_length(stored.task if stored else task, params.configuration)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        task = await self.submit(params, context)
        if params.configuration.return_immediately:  # the stream is the task, as queued
            yield apply_history_length(task, params.configuration)
            return
        async for event in self.follow(task.id, reader=self.reader_for(context)):
            yield event

    # -- streams from the task's event log ---------------------------------------------------------

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event, None]:
        stored = await self.store.get(params.id, context)
        if stored is None:
            raise TaskNotFoundError
        route = await self.store.records.route(params.id)
        if route is None:
            raise TaskNotFoundError(message=f"Task {params.id} was not sent through Mailslot")
        reader = self.reader_for(context)
        if stored.task.status.state in TERMINAL:
            if reader is None or not await self.feed.pending(params.id, reader):
                state = TaskState.Name(stored.task.status.state)
                raise UnsupportedOperationError(message=f"Task {params.id} is in terminal state: {state}")
            async for event in self.feed.replay(params.id, reader=reader):
                yield event
            return
        async for event in self.follow(params.id, reader=reader):
            yield event

    async def follow(
        self, task_id: str, *, reader: str | None, ack_first: bool = True
    ) -> AsyncGenerator[Event, None]:
        """Every event of the task after ``reader``'s cursor, oldest first, until the task
        ends or waits for input (:meth:`TaskFeed.read`)."""
        if await self.store.records.route(task_id) is None:
            raise TaskNotFoundError
        async for event in self.feed.read(
            task_id, reader=reader, ack_first=ack_first, timeout=self.receive_timeout
        ):
            yield event

    # -- cancel ---------------------------------------------------------------------------------

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task | None:
        """Cancel a task wherever it is. One that runs at a replica is asked of that replica
        (it calls the executor's ``cancel()`` and stops ``execute``, a2a's own local cancel)
        and waited for up to ``cancel_wait``; one that is queued, or whose replica does not
        answer in time, gets the SDK's remote cancel: CANCELED recorded in the shared store (a
        queued task never runs; a running one stops at its next save)."""
        stored = await self.store.get(params.id, context)
        if (
            stored is not None
            and stored.task.status.state not in TERMINAL
            and await self.store.records.is_running(params.id)
        ):
            await self.store.records.ask_cancel(params.id)
            ended = await self._ended(params.id)
            if ended is not None and ended.status.state == TaskState.TASK_STATE_CANCELED:
                return ended
        return await super().on_cancel_task(params, context)

    async def _ended(self, task_id: str) -> Task | None:
        """The task once it is in a terminal state, or None after ``cancel_wait``."""
        try:
            return await asyncio.wait_for(self._until_terminal(task_id), self.cancel_wait)
        except asyncio.TimeoutError:
            return None

    async def _until_terminal(self, task_id: str) -> Task:
        async with self.store.records.state.watch(("task", task_id), include_existing=True) as changes:
            async for change in changes:
                if change.value is not None and change.key == ("task", task_id):
                    task = Task()
                    task.ParseFromString(change.value)
                    if task.status.state in TERMINAL:
                        return task
        raise asyncio.TimeoutError  # the watch closed


__all__ = ["AGENT_STATE_KEY", "SUBSCRIBER_STATE_KEY", "TaskDesk", "reply_address"]
