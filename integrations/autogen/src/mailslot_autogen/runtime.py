"""An autogen-core ``AgentRuntime`` whose messages are Mailslot mail.

Unchanged ``RoutedAgent``s run on it; what changes is that messages survive the processes:

- ``send_message(m, AgentId(type, key))`` is a durable request to the mailbox of ``type``
  (:func:`~mailslot_autogen.addressing.type_address`); the key travels in a header. The mail
  waits there if no process hosts ``type`` yet; whichever runtime registers ``type`` (several
  replicas compete) runs the handler and replies into the sender runtime's own mailbox.
- ``publish_message(m, TopicId)`` goes two ways. Every subscription *this* runtime knows is fanned
  out as durable mail to the recipients' type mailboxes (declare a remote agent's subscription
  on the publishing side too to make its events durable); the message is also broadcast live on
  a Mailslot topic, so runtimes whose subscriptions the publisher does not know still deliver
  it to their agents (skipping agent types the fan-out already reached; one replica per type).
- Payloads are AutoGen's own serializers (``try_get_known_serializers_for_type``); routing rides
  in ``Autogen-*`` headers.
- Agent state lives in the SDK's state store (:mod:`mailslot_autogen.state`): saved after every
  handled message, loaded when an instance is created, so an agent hosted after a restart (or
  by another process) continues from its state.
- An agent type's mailbox is a service mailbox: its lease (``ttl``) only says whether some
  runtime hosts the type now; its mail waits while none does for ``keep`` (``SERVICE_KEEP``,
  28 days, by default), and any runtime registering the type later receives all of it.

It relies on autogen-core's ``SerializationRegistry`` and ``SubscriptionManager`` helpers (also
used by AutoGen's gRPC runtime), hence the ``autogen-core<0.8`` pin.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import mailslot
from autogen_core import (
    Agent,
    AgentId,
    AgentRuntime,
    AgentType,
    CancellationToken,
    MessageSerializer,
    Subscription,
    TopicId,
)
from autogen_core._runtime_impl_helpers import SubscriptionManager
from autogen_core._serialization import UnknownPayload
from mailslot.tasks import cancel_and_wait

from . import addressing as a
from ._receiving import MailHandling
from .addressing import H
from .state import DEFAULT_STATE_STORE, AgentStates

log = logging.getLogger(__name__)
T = TypeVar("T", bound=Agent)

#: Retention of an agent type's mailbox: how long mail for the type waits while no runtime
#: hosts it. A service may be down over a long holiday or a migration, so the longest the
#: broker allows (``MAX_KEEP``, 28 days; the mail stream's 30-day ``max_age`` is the backstop).
SERVICE_KEEP = 28 * 86400.0


class RemoteHandlerError(RuntimeError):
    """The recipient's handler raised; the message is the remote exception's text."""


class MailslotAgentRuntime(MailHandling, AgentRuntime):
    """Hosts the agent types registered on it and reaches every other type by mail.

    ``namespace`` separates independent systems on one broker. ``address`` names this
    runtime's reply mailbox: give a stable one to collect answers across a restart. Without
    one the runtime gets a random address nobody can find again, so its mailbox is reclaimed
    with its lease (retention 0, unread replies to dead letters). ``ttl`` is the leases'
    (presence: a crashed host counts as gone after at most ``ttl``). ``keep`` is the agent-type
    mailboxes' retention, how long their mail waits while no runtime hosts them (``SERVICE_KEEP``
    when None), and the named reply mailbox's (the SDK's default for named mailboxes when None).
    ``state_store`` is the SDK state-store namespace agent state is kept in (None: in memory
    only, forgotten with the process, as autogen-core's own runtimes do).
    """

    def __init__(
        self,
        client: mailslot.Mailslot,
        *,
        namespace: str = "autogen",
        address: str | None = None,
        ttl: float = 60.0,
        rpc_timeout: float = 300.0,
        priority: str = "normal",
        ack_wait: float = 30.0,
        max_deliver: int = 5,
        backoff: Sequence[float] = (1.0, 5.0),
        max_concurrency: int = 32,
        live_topics: bool = True,
        keep: float | None = None,
        state_store: str | None = DEFAULT_STATE_STORE,
    ) -> None:
        self._client = client
        self._ns = namespace
        self.address = address or a.runtime_address(namespace, uuid.uuid4().hex[:16])
        self._ttl = ttl
        self._home_keep = keep if address else 0.0
        self._rpc_timeout = rpc_timeout
        self._priority = priority
        self._box_opts: dict[str, Any] = {
            "ttl": ttl,
            "keep": SERVICE_KEEP if keep is None else keep,
            "ack_wait": ack_wait,
            "max_deliver": max_deliver,
        }
        self._backoff = tuple(backoff) or (1.0,)
        self._sem = asyncio.Semaphore(max_concurrency)
        self._live_topics = live_topics
        self._init_host(
            None if state_store is None else AgentStates(client, namespace=namespace, store=state_store)
        )
        self._subs = SubscriptionManager()
        self._home: mailslot.Mailbox | None = None
        self._boxes: dict[str, mailslot.Mailbox] = {}
        self._topic_subs: list[Any] = []
        self._loops: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._start_lock = asyncio.Lock()
        self._stopped = False

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> MailslotAgentRuntime:
        """Open this runtime's reply mailbox (done lazily by the first call that needs it)."""
        async with self._start_lock:
            if self._home is None:
                self._home = await self._client.open(self.address, ttl=self._ttl, keep=self._home_keep)
        return self

    async def _started(self) -> mailslot.Mailbox:
        if self._home is None:
            await self.start()
        assert self._home is not None
        return self._home

    async def idle(self, *, timeout: float = 30.0) -> None:
        """Wait until no handler of this runtime is running."""

        async def drained() -> None:
            while self._inflight:
                await asyncio.gather(*list(self._inflight), return_exceptions=True)

        await asyncio.wait_for(drained(), timeout)

    async def stop(self) -> None:
        """Stop receiving, let running handlers finish, save the agents' state, close the
        mailboxes (their mail stays for ``keep``: a restart picks up where this one stopped)."""
        if self._stopped:
            return
        self._stopped = True
        for sub in self._topic_subs:
            await sub.close()
        for box in self._boxes.values():
            await box.close()
        await cancel_and_wait(self._loops)  # a receive can swallow one cancel (mailslot.tasks)
        await asyncio.gather(*list(self._inflight), return_exceptions=True)
        for agent in list(self._instances.values()):  # changed outside a handler, if at all
            try:
                await self._autosave(agent)
            except Exception:
                log.exception("mailslot runtime: saving the state of %s failed", agent.id)
        if self._home is not None:
            await self._home.close()

    close = stop

    async def __aenter__(self) -> MailslotAgentRuntime:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- sending ------------------------------------------------------------------------------

    async def send_message(
        self,
        message: Any,
        recipient: AgentId,
        *,
        sender: AgentId | None = None,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> Any:
        """Durable request to ``recipient``; returns its handler's answer (or raises its error)."""
        home = await self._started()
        data, h = self._encode(message)
        h.update(self._route("rpc", sender, message_id))
        h[H.RECIPIENT_TYPE], h[H.RECIPIENT_KEY] = a.enc(recipient.type), a.enc(recipient.key)
        receipt = await home.request(
            a.type_address(self._ns, recipient.type),
            data,
            priority=self._priority,
            headers=h,
            idempotency_key=message_id,
        )
        fut = asyncio.ensure_future(home.reply_for(receipt.id, timeout=self._rpc_timeout))
        if cancellation_token is not None:
            cancellation_token.link_future(fut)
        reply = await fut
        try:
            rh = reply.headers
            if rh.get(H.KIND) == "error":
                raise RemoteHandlerError(a.dec(rh.get(H.ERROR, "")) or reply.text())
            if not rh.get(H.TYPE_NAME):
                return None
            result = self._decode(reply.data, rh)
            if isinstance(result, UnknownPayload):
                raise TypeError(
                    f"reply of type {result.type_name!r} has no serializer here: call "
                    "add_message_serializer(try_get_known_serializers_for_type(ThatType))"
                )
            return result
        finally:
            await reply.ack()

    async def publish_message(
        self,
        message: Any,
        topic_id: TopicId,
        *,
        sender: AgentId | None = None,
        cancellation_token: CancellationToken | None = None,
        message_id: str | None = None,
    ) -> None:
        """Durable mail to every recipient of a known subscription, plus a live broadcast."""
        home = await self._started()
        data, h = self._encode(message)
        h.update(self._route("event", sender, message_id, topic_id))
        recipients = await self._subs.get_subscribed_recipients(topic_id)
        for rid in recipients:
            if sender is not None and rid == sender:
                continue  # like the single-threaded runtime: no echo to the publisher
            eh = {**h, H.RECIPIENT_TYPE: a.enc(rid.type), H.RECIPIENT_KEY: a.enc(rid.key)}
            await home.send(a.type_address(self._ns, rid.type), data, priority=self._priority, headers=eh)
        if self._live_topics:
            covered = sorted({rid.type for rid in recipients})
            bh = {**h, H.COVERED: ",".join(a.enc(t) for t in covered)}
            await self._client.publish(a.topic_name(self._ns, topic_id.type), data, headers=bh)

    async def register_factory(
        self,
        type: str | AgentType,
        agent_factory: Callable[[], T | Awaitable[T]],
        *,
        expected_class: type[T] | None = None,
    ) -> AgentType:
        agent_type = type if isinstance(type, AgentType) else AgentType(type)
        if agent_type.type in self._factories:
            raise ValueError(f"agent type {agent_type.type!r} is already registered")

        async def make() -> Agent:
            made = agent_factory()
            agent = await made if inspect.isawaitable(made) else made
            if expected_class is not None and not isinstance(agent, expected_class):
                raise ValueError(f"factory for {agent_type.type} made a {agent.__class__.__name__}")
            return agent

        self._factories[agent_type.type] = make
        self._add_handler_types(expected_class)
        await self._host(agent_type.type)
        return agent_type

    async def register_agent_instance(self, agent_instance: Agent, agent_id: AgentId) -> AgentId:
        if agent_id in self._instances:
            raise ValueError(f"agent {agent_id} already exists")
        await agent_instance.bind_id_and_runtime(id=agent_id, runtime=self)
        if self._states is not None:
            await self._states.restore(agent_instance)
        self._instances[agent_id] = agent_instance
        self._add_handler_types(agent_instance.__class__)
        await self._host(agent_id.type)
        return agent_id

    async def add_subscription(self, subscription: Subscription) -> None:
        await self._subs.add_subscription(subscription)

    async def remove_subscription(self, id: str) -> None:
        await self._subs.remove_subscription(id)

    def add_message_serializer(
        self, serializer: MessageSerializer[Any] | Sequence[MessageSerializer[Any]]
    ) -> None:
        self._ser.add_serializer(serializer)


__all__ = ["SERVICE_KEEP", "MailslotAgentRuntime", "RemoteHandlerError"]
