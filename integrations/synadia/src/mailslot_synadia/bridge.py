"""The bridge: one Mailslot client and one plain NATS connection (the Synadia SDKs' own
transport), carrying mail and protocol prompts both ways."""

from __future__ import annotations

import uuid
from typing import Literal

import mailslot
from mailslot import signing
from mailslot.natsio import NatsClient
from synadia_ai.agent_service import SenderGate
from synadia_ai.agents import Identity, SenderResolver

from . import naming as n
from .courier import Courier
from .exposer import Exposer
from .front import Front
from .reach import Reach


class Bridge:
    """Mailslot agents become protocol agents (``expose``) and protocol agents become
    reachable by mail (``reach``, see :mod:`mailslot_synadia.reach`).

    ``nc`` is the NATS connection for the protocol side (default: the Mailslot client's own);
    the bridge never closes it, nor ``ms``.

    ``owner``/``agent`` are the protocol tokens of mailboxes whose card names none; the bridge
    mailbox (``address``) carries prompts as mail and their answers back, and this bridge's
    own inbox (``<address>.<instance>``) the chunks and questions of its callers' prompts, so
    several bridges can serve one account (NATS queue groups give each prompt to one of them).
    ``wait_online`` is how long a caller is kept (with keep-alive acks every ``keepalive`` s)
    waiting for a Mailslot agent that is offline or busy before it gets ``504``; the mail
    keeps waiting regardless.
    ``prompt_timeout`` is the inactivity timeout of the prompts the bridge sends to protocol
    agents (and how long it waits for a Mailslot sender to answer their mid-stream questions).
    ``min_sender_trust="signed"`` refuses (401) prompts without a verified ``Agent-Sender``;
    ``identity`` (the Synadia SDK's, with a signer for the bridge's NATS user, an NKEY user)
    signs the prompts the bridge sends to protocol agents.

    ``signing_seed`` (a user nkey seed; best the same as ``identity``'s, so one key is the
    bridge in both worlds) makes the bridge a *voucher*: ``ms`` signs the mail it sends with
    it, and mail a verified protocol caller sends under its ``sap.*`` address reads
    ``sender_verified`` with ``verified_by`` the bridge, where the operator granted the
    bridge's key ``speaks_for: ["sap.>"]`` (:func:`mailslot.signing.grant_vouching`). ``ms``
    should then be the bridge's own client: everything it sends is signed as the bridge.

    ``ack_wait`` is how soon mail that a stopped (or killed) bridge was prompting a protocol
    agent with is delivered again (to another bridge, or this one restarted); a prompt that
    takes longer is kept in progress meanwhile.
    """

    def __init__(
        self,
        ms: mailslot.Mailslot,
        nc: NatsClient | None = None,
        *,
        owner: str = n.DEFAULT_OWNER,
        agent: str = n.DEFAULT_AGENT,
        address: str | None = None,
        wait_online: float = 300.0,
        keepalive: float = 15.0,
        heartbeat_interval: int = 30,
        min_sender_trust: Literal["any", "signed"] = "any",
        expose: bool = True,
        reach: bool = True,
        prompt_timeout: float = 60.0,
        identity: Identity | None = None,
        signing_seed: str | None = None,
        ack_wait: float = 10.0,
    ) -> None:
        self.ms = ms
        self.nc = ms.nc if nc is None else nc
        self.owner = owner
        self.agent = agent
        self.address = address or f"synadia.bridge.{agent}.{owner}"
        self.wait_online = wait_online
        self.keepalive = keepalive
        self.heartbeat_interval = heartbeat_interval
        self.min_sender_trust = min_sender_trust
        self._expose = expose
        self._reach_enabled = reach
        self.mailbox: mailslot.Mailbox | None = None
        self.instance = uuid.uuid4().hex[:8]
        self.inbox: mailslot.Mailbox | None = None
        self.ack_wait = ack_wait
        self.courier: Courier | None = None
        self.exposer: Exposer | None = None
        self.front: Front | None = None
        self.prompt_timeout = prompt_timeout
        self.identity = identity
        self.signing_seed = signing_seed
        self.reach: Reach | None = None

    async def start(self) -> Bridge:
        if self.signing_seed is not None:
            signing.vouch(self.ms, self.address, self.signing_seed)
        card = {"description": "Synadia Agent Protocol bridge", "metadata": {n.CARD_KEY: {"expose": False}}}
        self.mailbox = await self.ms.open(self.address, card=card, max_deliver=-1)
        if self._expose:
            # Chunks and questions of this process's callers; kept a while after a restart
            # (whatever still arrives for a stream that is gone ends in dead letters, traced).
            self.inbox = await self.ms.open(
                f"{self.address}.{self.instance}", card=card, max_deliver=-1, keep=n.INBOX_KEEP
            )
            self.courier = Courier(self.mailbox, wait_online=self.wait_online, inbox=self.inbox)
            self.courier.start()
            self.exposer = Exposer(
                self.ms,
                self.nc,
                self.courier,
                agent=self.agent,
                owner=self.owner,
                heartbeat_interval=self.heartbeat_interval,
                keepalive=self.keepalive,
                service_options=lambda: {"min_sender_trust": self.min_sender_trust},
            )
            await self.exposer.start()
            self.front = Front(
                self.nc,
                self.courier,
                agent=self.agent,
                owner=self.owner,
                resolve=self.exposer.resolve,
                presence=self.exposer.presence,
                keepalive=self.keepalive,
                heartbeat_interval=self.heartbeat_interval,
                # The resolver is what lets a verified sender name its registered agent.
                gate=SenderGate(
                    min_sender_trust=self.min_sender_trust, resolver=SenderResolver(self.nc).resolve
                ),
            )
            await self.front.start()
        if self._reach_enabled:
            self.reach = Reach(
                self.ms,
                self.nc,
                prompt_timeout=self.prompt_timeout,
                skip={(self.agent, self.owner)},
                identity=self.identity,
                ack_wait=self.ack_wait,
            )
            await self.reach.start()
        return self

    async def close(self) -> None:
        """Stop both directions; callers waiting on a prompt get 503 (``bridge_stopping``),
        their mail keeps waiting. Closing again does nothing."""
        parts, self.reach, self.front, self.exposer, self.courier = (
            (self.reach, self.front, self.exposer, self.courier),
            None,
            None,
            None,
            None,
        )
        for part in parts:
            if part is not None:
                await part.close()
        boxes, self.inbox, self.mailbox = (self.inbox, self.mailbox), None, None
        for mb in boxes:
            if mb is not None:
                await mb.close()

    async def __aenter__(self) -> Bridge:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
