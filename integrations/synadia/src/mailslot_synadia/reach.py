"""Protocol agent -> reachable by mail: mail to ``sap.<agent>.<owner>.<name>`` waits in that
mailbox while the protocol agent is away and is delivered to it as a prompt while it is online.

"Online" is the protocol's own notion: heartbeats on ``agents.hb.<agent>.<owner>.<name>``, and
offline after three intervals without one. The bridge opens the agent's mailbox when a heartbeat
arrives and closes it when they stop, so mail waits *undelivered* in between: no receive loop
naks it while the agent is down (naks count toward ``max_deliver`` and would end in dead
letters). The mailbox is also opened with ``max_deliver=-1``, so even the redeliveries a prompt
that failed half-way causes (the agent vanished between two beats) never dead-letter it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import mailslot
from mailslot.natsio import NatsClient, NoRespondersError
from mailslot.natsio import NatsMsg as Msg
from mailslot.natsio import NatsSubscription as Subscription
from synadia_ai.agents import (
    Agent,
    Agents,
    AgentSubject,
    DiscoverFilter,
    Envelope,
    Identity,
    IdentityError,
    IdentityUnavailableError,
    ProtocolError,
    Query,
    ResponseChunk,
    StreamStalledError,
    ValidationError,
)
from synadia_ai.agents.subjects import parse_agent_subject

from . import naming as n
from ._tasks import stop_tasks

log = logging.getLogger(__name__)

#: A protocol agent is offline after this many heartbeat intervals without one (spec §8).
MISSED_BEATS = 3


class _Away(Exception):
    """The protocol agent went away while a prompt was in flight: the mail goes back."""


class _Worker:
    """One protocol agent that is online: its mailbox is open and its mail is prompted."""

    def __init__(self, reach: Reach, subject: AgentSubject, interval: float) -> None:
        self.reach = reach
        self.subject = subject
        self.address = n.reach_address(subject)
        self.interval = interval
        self.last_beat = asyncio.get_running_loop().time()
        self.task = asyncio.create_task(self._run(), name=f"synadia-reach-{self.address}")
        self.delivered: list[int] = []  # the delivery count of each mail delivered, in order

    def alive(self, now: float) -> bool:
        return not self.task.done() and now - self.last_beat <= MISSED_BEATS * self.interval

    async def _agent(self) -> Agent | None:
        found = await self.reach.agents.discover(
            filter=DiscoverFilter(
                agent=self.subject.agent, owner=self.subject.owner, session_name=self.subject.session_name
            ),
            max_wait=2.0,
        )
        return found[0] if found else None

    async def _run(self) -> None:
        agent = await self._agent()
        if agent is None:
            return  # not registered (yet): the next heartbeat tries again
        card = {
            "description": f"reaches the Synadia protocol agent on {agent.prompt_subject}",
            "metadata": {n.CARD_KEY: {"expose": False, "reaches": agent.prompt_subject}},
        }
        ack_wait = self.reach.ack_wait
        async with await self.reach.ms.open(
            self.address, card=card, max_deliver=-1, ttl=10, ack_wait=ack_wait
        ) as mb:
            async for msg in mb:
                # A bridge that stops (or is killed) mid-prompt leaves the mail unacked: it
                # comes back after ack_wait, to another bridge or this one restarted. A prompt
                # that takes longer is kept in progress.
                keeper = asyncio.create_task(_keep_in_progress(msg, ack_wait / 3))
                try:
                    await self._deliver(agent, mb, msg)
                except _Away:
                    await msg.nak()
                    return  # wait for the next heartbeat; the mail waits in the mailbox
                finally:
                    await stop_tasks([keeper])

    async def _deliver(self, agent: Agent, mb: mailslot.Mailbox, msg: mailslot.Message) -> None:
        envelope = _envelope_of(msg)
        texts: list[str] = []
        try:
            async for item in agent.prompt(envelope, timeout=self.reach.prompt_timeout):
                if isinstance(item, ResponseChunk):
                    texts.append(item.text)
                elif isinstance(item, Query):
                    await self._query(mb, msg, item)
        except (NoRespondersError, StreamStalledError, IdentityUnavailableError) as exc:
            raise _Away(str(exc)) from exc  # incl. no answer to the bridge's own "who am I"
        except IdentityError as exc:  # e.g. the agent wants a signed sender, the bridge has no key
            await self._refused(msg, 401, str(exc))
            return
        except ValidationError as exc:  # refused before sending: it can never be delivered
            code = 413 if "payload" in type(exc).__name__.lower() else 400
            await self._refused(msg, code, str(exc))
            return
        except ProtocolError as exc:
            await self._refused(msg, _code_of(exc), str(exc))
            return
        if msg.reply_to:
            await msg.reply({"text": "".join(texts), "agent": agent.prompt_subject})
        await msg.ack()
        self.delivered.append(msg.delivery_count)

    async def _query(self, mb: mailslot.Mailbox, msg: mailslot.Message, query: Query) -> None:
        """The protocol agent asks mid-stream: the question goes to the mail's sender as a
        request; its reply is the answer (no answer: the agent's own query timeout runs out)."""
        if not msg.sender:
            return
        with contextlib.suppress(mailslot.Timeout):
            reply = await mb.ask(
                msg.sender,
                {"query": query.prompt, "agent": self.address},
                thread_id=msg.correlation_id or msg.id,
                timeout=self.reach.prompt_timeout,
            )
            try:
                body: Any = reply.json()
            except Exception:
                body = None
            await query.reply(n.reply_text(body, reply.text()))

    async def _refused(self, msg: mailslot.Message, code: int, message: str) -> None:
        """The agent (or the protocol's own checks) refused this mail: the sender hears why;
        the mail is settled, not retried (being refused is not being away)."""
        if msg.reply_to:
            await msg.reply({"error": code, "message": message, "agent": self.subject.prompt})
            await msg.ack()
        else:
            await msg.term(reason=f"synadia {code}: {message}"[:200])


async def _keep_in_progress(msg: mailslot.Message, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        with contextlib.suppress(mailslot.MailslotError):
            await msg.in_progress()


def _code_of(exc: ProtocolError) -> int:
    text = str(exc)
    if text.startswith("service error "):
        with contextlib.suppress(ValueError):
            return int(text.split()[2].rstrip(":"))
    return 500


def _envelope_of(msg: mailslot.Message) -> Envelope:
    """Mail as a prompt: ``{"prompt": ..., other fields}`` keeps its fields; any other body is
    the prompt text. The mail's priority and sender ride along as envelope fields."""
    body: Any
    try:
        body = msg.json()
    except Exception:
        body = msg.text()
    fields: dict[str, Any] = {}
    if isinstance(body, dict) and isinstance(body.get("prompt"), str):
        fields = {k: v for k, v in body.items() if k != "prompt"}
        prompt = body["prompt"]
    else:
        prompt = body if isinstance(body, str) else json.dumps(body)
    fields.setdefault(n.PRIORITY_FIELD, msg.priority.label)
    if msg.sender:
        # The bridge's signed Agent-Sender vouches for what it says here: whether Mailslot
        # verified the sender (and who vouched, for a sender behind another bridge).
        fields.setdefault("mailslot_sender", msg.sender)
        fields.setdefault("mailslot_sender_verified", msg.sender_verified)
        if msg.verified_by:
            fields.setdefault("mailslot_verified_by", msg.verified_by)
    return Envelope(prompt=prompt, **fields)


class Reach:
    """Follows protocol heartbeats; keeps a :class:`_Worker` per online protocol agent."""

    def __init__(
        self,
        ms: mailslot.Mailslot,
        nc: NatsClient,
        *,
        prompt_timeout: float,
        skip: set[tuple[str, str]],
        identity: Identity | None = None,
        ack_wait: float = 10.0,
    ) -> None:
        self.ms = ms
        self.ack_wait = ack_wait
        self.nc = nc
        self.agents = Agents(nc=nc, identity=identity)
        self.prompt_timeout = prompt_timeout
        self._skip = skip
        self.workers: dict[str, _Worker] = {}
        self._sub: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe("agents.hb.*.*.*", cb=self._on_beat)
        self._sweeper = asyncio.create_task(self._sweep(), name="synadia-reach-sweep")

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
        await stop_tasks([self._sweeper, *(w.task for w in self.workers.values())])
        self.workers.clear()
        await self.agents.close()

    async def _on_beat(self, msg: Msg) -> None:
        subject = parse_agent_subject(msg.subject, verb="hb")
        if subject is None or (subject.agent, subject.owner) in self._skip:
            return
        try:
            beat = json.loads(msg.data)
        except ValueError:
            return
        if not isinstance(beat, dict) or "mailslot" in beat:
            return  # a Mailslot mailbox exposed by a bridge: mail reaches it directly
        interval = float(beat.get("interval_s") or 30)
        worker = self.workers.get(subject.prompt)
        now = asyncio.get_running_loop().time()
        if worker is not None and worker.alive(now):
            worker.last_beat, worker.interval = now, interval
            return
        if worker is not None:
            await stop_tasks([worker.task])
        self.workers[subject.prompt] = _Worker(self, subject, interval)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = asyncio.get_running_loop().time()
            for key, worker in list(self.workers.items()):
                if not worker.alive(now):
                    await stop_tasks([worker.task])  # closes its mailbox: mail waits again
                    if self.workers.get(key) is worker:
                        del self.workers[key]
