"""Mailbox -> protocol agent: every Mailslot agent with a live lease is registered as a
protocol agent (``AgentService``: ``$SRV`` registration, heartbeats, ``status``), from its card;
when its lease lapses the service stops, so its heartbeats stop with it, while the
:class:`~mailslot_synadia.front.Front` keeps its prompt subject answering."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import mailslot
from mailslot.natsio import NatsClient
from synadia_ai.agent_service import AgentService, PromptStream, RequestRejectedError
from synadia_ai.agents import AgentSubject, Envelope

from . import naming as n
from ._tasks import stop_tasks
from .courier import Courier
from .errors import AGENT_LEFT, STOPPING, Refused

log = logging.getLogger(__name__)


class _Served:
    def __init__(self, address: str, subject: AgentSubject, service: AgentService) -> None:
        self.address = address
        self.subject = subject
        self.service = service


class Exposer:
    """Follows the registry and keeps one ``AgentService`` per live, exposed Mailslot agent."""

    def __init__(
        self,
        ms: mailslot.Mailslot,
        nc: NatsClient,
        courier: Courier,
        *,
        agent: str,
        owner: str,
        heartbeat_interval: int,
        keepalive: float,
        service_options: Callable[[], dict[str, object]],
    ) -> None:
        self._ms = ms
        self._nc = nc
        self._courier = courier
        self._closing = False
        self.agent = agent
        self.owner = owner
        self._heartbeat_interval = heartbeat_interval
        self._keepalive = keepalive
        self._service_options = service_options
        self.served: dict[str, _Served] = {}
        self._tokens: dict[str, str] = {}  # session token -> address, default namespace only
        self._watch: mailslot.AgentWatch | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._watch = await self._ms.watch_agents(initial=True)
        for card in await self._ms.agents(include_offline=True):
            self._learn(card)
        self._task = asyncio.create_task(self._follow(), name="synadia-exposer")

    async def close(self) -> None:
        self._closing = True
        await stop_tasks([self._task])
        if self._watch is not None:
            await self._watch.close()
        async with self._lock:
            for address in list(self.served):
                await self._stop(address)

    async def resolve(self, token: str) -> str | None:
        """The mailbox (live or offline, still kept) behind a prompt subject's name token.

        A live one is known from the registry watch; for any other the registry is read again
        (with offline agents), so a mailbox reclaimed since is no longer found."""
        address = self._tokens.get(token)
        if address is not None and address in self.served:
            return address
        self._tokens = {}
        for card in await self._ms.agents(include_offline=True):
            self._learn(card)
        return self._tokens.get(token)

    def presence(self, address: str) -> str:
        return "online" if address in self.served else "offline"

    def _learn(self, card: mailslot.AgentCard) -> AgentSubject | None:
        meta = card.metadata.get(n.CARD_KEY)
        if not card.address or not n.exposed(meta):
            return None
        subject = n.subject_for(card.address, meta, agent=self.agent, owner=self.owner)
        if (subject.agent, subject.owner) == (self.agent, self.owner):
            self._tokens[subject.session_name] = card.address
        return subject

    async def _follow(self) -> None:
        assert self._watch is not None
        async for event in self._watch:
            try:
                async with self._lock:
                    if event.kind == "leave" or event.card is None:
                        await self._stop(event.address)
                    else:
                        await self._serve(event.card)
            except Exception:
                log.exception("exposing %s", event.address)

    async def _serve(self, card: mailslot.AgentCard) -> None:
        address = card.address or ""
        subject = self._learn(card)
        current = self.served.get(address)
        if current is not None and current.subject == subject:
            return
        await self._stop(address)
        if subject is None:
            return
        service = AgentService(
            agent=subject.agent,
            owner=subject.owner,
            session_name=subject.session_name,
            nc=self._nc,
            description=card.description or f"Mailslot mailbox {address}",
            heartbeat_interval_s=self._heartbeat_interval,
            keepalive_interval_s=self._keepalive,
            extra_metadata={"mailslot_address": address, "mailslot_bridge": self._courier.mailbox.address},
            heartbeat_extras=lambda: {"mailslot": {"address": address, "presence": "online"}},
            max_concurrent_prompts=64,
            **self._service_options(),  # type: ignore[arg-type]
        )
        service.on_prompt(self._handler(address))
        await service.start()
        self.served[address] = _Served(address, subject, service)
        log.info("exposed %s as %s", address, subject.prompt)

    async def _stop(self, address: str) -> None:
        served = self.served.pop(address, None)
        if served is not None:
            await served.service.stop()
            log.info("%s left: %s unregistered, its heartbeats stopped", address, served.subject.prompt)

    def _handler(self, address: str) -> Callable[[Envelope, PromptStream], asyncio.Future[None]]:
        courier = self._courier

        async def on_prompt(envelope: Envelope, stream: PromptStream) -> None:
            served = self.served.get(address)
            subject = served.subject.prompt if served else ""
            try:
                await courier.prompt(address, envelope, stream, sender=stream.sender, subject=subject)
            except Refused as refused:
                raise RequestRejectedError(refused.code, refused.description) from None
            except asyncio.CancelledError:
                # Its service stops under the prompt (the bridge stops, or the lease lapsed):
                # the caller hears why instead of an empty stream; the mail keeps waiting.
                # (The SDK sends a handler's error frame, then the terminator.)
                why = STOPPING if self._closing else AGENT_LEFT
                raise RequestRejectedError(why.code, why.description) from None

        return on_prompt  # type: ignore[return-value]
