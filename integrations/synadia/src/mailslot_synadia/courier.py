"""Mailbox -> protocol agent, the part both prompt paths share: a prompt becomes mail from the
bridge mailbox, the Mailslot agent's reply (and any chunks it streamed before it) goes back on
the caller's stream, its mid-stream questions become protocol ``query`` chunks.

The bridge instance's own inbox (``<bridge mailbox>.<instance>``, named in the prompt's
``Synadia-Bridge`` header) receives what a Mailslot agent sends back while it works
(``PromptMail``): ``{"chunk": text}`` mail and ``{"query": text}`` asks, each with the prompt's
correlation id as thread id. One inbox per bridge process, because only the process holding
the caller's stream can forward them: several bridges on one account share the bridge
mailbox (sender, replies) but not their inboxes. The final reply comes through ``reply_for``
(it waits durably even if the bridge restarts), carrying in ``Synadia-Chunks`` how many
chunks came before it, so the caller's stream keeps their order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import mailslot
from synadia_ai.agents import AgentSubject, ClaimedSender, Envelope, SenderInfo, VerifiedSender

from . import naming as n
from ._tasks import stop_tasks
from .errors import Refused

log = logging.getLogger(__name__)


class Stream(Protocol):
    """What a prompt handler writes to: ``PromptStream`` (per-agent service) or the front's own."""

    async def send(self, chunk: str) -> None: ...

    async def ask(self, prompt: str, *, timeout: float) -> Envelope: ...


@dataclass
class _Live:
    stream: Stream
    forwarded: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def sender_headers(sender: SenderInfo | None) -> dict[str, str]:
    """The Mailslot headers that say who sent a prompt and how far that is proven."""
    if isinstance(sender, VerifiedSender):
        out = {n.H_TRUST: "verified", n.H_USER: sender.id.user, n.H_ACCOUNT: sender.id.account}
    elif isinstance(sender, ClaimedSender):
        out = {n.H_TRUST: "claimed", n.H_CLAIM: f"{sender.claim.account}.{sender.claim.user}"}
    else:
        return {n.H_TRUST: "anonymous"}
    if sender.name:
        out[n.H_NAME] = sender.name
    return out


async def sender_address(sender: SenderInfo | None) -> tuple[str | None, str | None]:
    """For a verified sender that resolves to a registered protocol agent (its ``id_sig``
    checks out), the Mailslot address that reaches that agent (``sap.*``), which becomes the
    mail's sender; else None. The second item is the agent's prompt subject.

    An unregistered NKEY gets no address: no mailbox reaches it, so a reply to it could
    never arrive; its mail comes from the bridge mailbox and names the NKEY in the headers."""
    if not isinstance(sender, VerifiedSender):
        return None, None
    with contextlib.suppress(Exception):
        info = await sender.resolve()
        if info is not None:
            subject = AgentSubject(agent=info.agent, owner=info.owner, session_name=info.session_name)
            return n.reach_address(subject), subject.prompt
    return None, None


class Courier:
    """Carries prompts into mail through one bridge mailbox and the answers back."""

    def __init__(
        self,
        mailbox: mailslot.Mailbox,
        *,
        wait_online: float,
        chunk_grace: float = 10.0,
        inbox: mailslot.Mailbox | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.inbox = mailbox if inbox is None else inbox
        self.wait_online = wait_online
        self.chunk_grace = chunk_grace
        self._live: dict[str, _Live] = {}
        self._task: asyncio.Task[None] | None = None
        self._asks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._receive(), name=f"synadia-courier-{self.inbox.address}")

    async def close(self) -> None:
        await stop_tasks([self._task, *self._asks])

    async def prompt(
        self, address: str, envelope: Envelope, stream: Stream, *, sender: SenderInfo | None, subject: str
    ) -> None:
        """Mail ``envelope`` to ``address`` and stream its answer to ``stream``; Refused when
        the prompt cannot become mail or no answer came within ``wait_online`` (the mail then
        keeps waiting in the mailbox; its reply, when it comes, waits in the bridge's)."""
        try:
            priority = n.priority_of(envelope)
        except ValueError as exc:
            raise Refused(400, "bad_priority", str(exc)) from None
        headers = {n.H_BRIDGE: self.inbox.address, n.H_SUBJECT: subject, **sender_headers(sender)}
        # A verified caller that is a registered protocol agent is the mail's sender, under the
        # address that reaches it by mail; the bridge vouches for it if it has a key
        # (Bridge(signing_seed=...)). Anyone else: the bridge mailbox, with the headers.
        reach, _subject = await sender_address(sender)
        if reach:
            headers[n.H_AGENT] = reach
        try:
            receipt = await self.mailbox.request(
                address, n.prompt_payload(envelope), priority=priority, headers=headers, sender=reach
            )
        except mailslot.PayloadTooLarge as exc:
            raise Refused(413, "payload_too_large", str(exc)) from None
        except mailslot.InvalidInput as exc:
            raise Refused(400, "bad_request", str(exc)) from None
        cid = receipt.correlation_id
        live = self._live[cid] = _Live(stream)
        try:
            try:
                reply = await self.mailbox.reply_for(cid, timeout=self.wait_online)
            except mailslot.Timeout:
                raise Refused(
                    504,
                    "agent_unavailable",
                    f"{address} did not answer within {self.wait_online:g}s; the prompt waits in its mailbox",
                    address=address,
                    mail_id=receipt.id,
                ) from None
            await self._await_chunks(live, int(reply.headers.get(n.H_CHUNKS, "0") or 0))
            try:
                body: Any = reply.json()
            except Exception:
                body = None
            text = n.reply_text(body, reply.text() if reply.data else "")
            if text:
                await stream.send(text)
        finally:
            self._live.pop(cid, None)

    async def _await_chunks(self, live: _Live, count: int) -> None:
        deadline = asyncio.get_running_loop().time() + self.chunk_grace
        while live.forwarded < count:
            live.changed.clear()
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return  # a chunk mail went missing: the final text still goes out
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(live.changed.wait(), left)

    async def _receive(self) -> None:
        async for msg in self.inbox:
            try:
                await self._one(msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("bridge mail %s", msg.id)
                with contextlib.suppress(Exception):
                    await msg.ack()

    async def _one(self, msg: mailslot.Message) -> None:
        live = self._live.get(msg.thread_id or "")
        try:
            body = msg.json()
        except Exception:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if live is not None and isinstance(body.get("chunk"), str):
            # In order, in this loop: chunks of one prompt go out as they were sent.
            await live.stream.send(body["chunk"])
            live.forwarded += 1
            live.changed.set()
        elif live is not None and isinstance(body.get("query"), str) and msg.reply_to:
            task = asyncio.create_task(self._query(live, msg, body))
            self._asks.add(task)
            task.add_done_callback(self._asks.discard)
            return
        elif msg.reply_to:
            await msg.reply({"error": "no prompt in flight for this thread"})
        await msg.ack()

    async def _query(self, live: _Live, msg: mailslot.Message, body: dict[str, Any]) -> None:
        """A Mailslot agent's question: a ``query`` chunk to the caller, its answer the reply."""
        timeout = float(body.get("timeout") or 60.0)
        try:
            answer = await live.stream.ask(body["query"], timeout=timeout)
            await msg.reply({"answer": answer.prompt})
        except Exception as exc:
            await msg.reply({"error": f"no answer from the caller: {type(exc).__name__}"})
        await msg.ack()
