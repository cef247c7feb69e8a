"""An a2a-sdk client transport over Mailslot (protocol binding ``MAILSLOT``).

A card that lists ``AgentInterface(url="mailslot://<address>", protocol_binding="MAILSLOT")``
can be used by any a2a-sdk ``Client`` from a factory that knows this binding::

    factory = client_factory(ms, requester="planner")
    client = factory.create(card)
    task = [ev async for ev in client.send_message(request)][-1].task   # SUBMITTED at once

Requests go to the agent's mailbox and the reads go to the shared task store, so nothing
waits for the agent to be online; the agent's events wait in the requester's reply mailboxes
(``<requester>.t-<task id>``) and in the task's log, which ``subscribe`` replays from the
requester's cursor, also from a restarted client.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import mailslot
from a2a.client import ClientConfig, ClientFactory
from a2a.client.client import ClientCallContext
from a2a.client.transports.base import ClientTransport
from a2a.server.context import ServerCallContext
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    SendMessageRequest,
    SendMessageResponse,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import UnsupportedOperationError
from a2a.utils.proto_utils import to_stream_response

from .cards import BINDING, address_of
from .desk import SUBSCRIBER_STATE_KEY, TaskDesk
from .store import NAMESPACE


class MailslotTransport(ClientTransport):
    """``ClientTransport`` whose requests go through Mailslot to the agent at ``agent``."""

    def __init__(
        self,
        ms: mailslot.Mailslot,
        *,
        agent: str,
        requester: str,
        card: AgentCard | None = None,
        namespace: str = NAMESPACE,
    ) -> None:
        self.card = card
        self.desk = TaskDesk(ms, requester=requester, agent=agent, namespace=namespace)
        # Streams move the requester's own cursor in a task's log: a restarted client goes on
        # where it stopped, and other readers of the task are not affected.
        self._ctx = ServerCallContext(state={SUBSCRIBER_STATE_KEY: requester})

    async def send_message(
        self, request: SendMessageRequest, *, context: ClientCallContext | None = None
    ) -> SendMessageResponse:
        result = await self.desk.on_message_send(request, self._ctx)
        if isinstance(result, Task):
            return SendMessageResponse(task=result)
        return SendMessageResponse(message=result)

    async def send_message_streaming(
        self, request: SendMessageRequest, *, context: ClientCallContext | None = None
    ) -> AsyncGenerator[StreamResponse]:
        async for event in self.desk.on_message_send_stream(request, self._ctx):
            yield to_stream_response(event)

    async def get_task(self, request: GetTaskRequest, *, context: ClientCallContext | None = None) -> Task:
        task = await self.desk.on_get_task(request, self._ctx)
        assert task is not None  # the handler raises TaskNotFoundError
        return task

    async def list_tasks(
        self, request: ListTasksRequest, *, context: ClientCallContext | None = None
    ) -> ListTasksResponse:
        return await self.desk.on_list_tasks(request, self._ctx)

    async def cancel_task(
        self, request: CancelTaskRequest, *, context: ClientCallContext | None = None
    ) -> Task:
        task = await self.desk.on_cancel_task(request, self._ctx)
        assert task is not None
        return task

    async def subscribe(
        self, request: SubscribeToTaskRequest, *, context: ClientCallContext | None = None
    ) -> AsyncGenerator[StreamResponse]:
        async for event in self.desk.on_subscribe_to_task(request, self._ctx):
            yield to_stream_response(event)

    async def create_task_push_notification_config(
        self, request: TaskPushNotificationConfig, *, context: ClientCallContext | None = None
    ) -> TaskPushNotificationConfig:
        raise UnsupportedOperationError(
            message="webhooks are delivered by the HTTP front; read the reply mailbox"
        )

    async def get_task_push_notification_config(
        self, request: GetTaskPushNotificationConfigRequest, *, context: ClientCallContext | None = None
    ) -> TaskPushNotificationConfig:
        raise UnsupportedOperationError(message="webhooks are delivered by the HTTP front")

    async def list_task_push_notification_configs(
        self, request: ListTaskPushNotificationConfigsRequest, *, context: ClientCallContext | None = None
    ) -> ListTaskPushNotificationConfigsResponse:
        raise UnsupportedOperationError(message="webhooks are delivered by the HTTP front")

    async def delete_task_push_notification_config(
        self, request: DeleteTaskPushNotificationConfigRequest, *, context: ClientCallContext | None = None
    ) -> None:
        raise UnsupportedOperationError(message="webhooks are delivered by the HTTP front")

    async def get_extended_agent_card(
        self, request: GetExtendedAgentCardRequest, *, context: ClientCallContext | None = None
    ) -> AgentCard:
        if self.card is None:
            raise UnsupportedOperationError(message="no card known for this agent")
        return self.card

    async def close(self) -> None:
        return None


def register(
    factory: ClientFactory, ms: mailslot.Mailslot, *, requester: str, namespace: str = NAMESPACE
) -> None:
    """Teach ``factory`` the ``MAILSLOT`` binding: its clients talk to agents through ``ms``."""

    def produce(card: AgentCard, url: str, config: ClientConfig) -> ClientTransport:
        return MailslotTransport(
            ms, agent=address_of(url), requester=requester, card=card, namespace=namespace
        )

    factory.register(BINDING, produce)


def client_factory(
    ms: mailslot.Mailslot,
    *,
    requester: str,
    config: ClientConfig | None = None,
    namespace: str = NAMESPACE,
) -> ClientFactory:
    """A ``ClientFactory`` that prefers the Mailslot binding. ``send_message`` with
    ``return_immediately`` answers with the SUBMITTED task at once, streaming or not."""
    config = config or ClientConfig()
    if BINDING not in config.supported_protocol_bindings:
        config.supported_protocol_bindings = [BINDING, *config.supported_protocol_bindings]
    config.use_client_preference = True
    factory = ClientFactory(config)
    register(factory, ms, requester=requester, namespace=namespace)
    return factory


__all__ = ["MailslotTransport", "client_factory", "register"]
