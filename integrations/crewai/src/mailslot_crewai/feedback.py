"""Durable human/agent feedback for CrewAI Flows: pause a Flow until a mailbox reply comes.

CrewAI's ``@human_feedback(provider=...)`` asks a provider for feedback. A provider that
raises ``HumanFeedbackPending`` makes ``kickoff()`` return instead of blocking, and the Flow's
persistence saves its state and the pending context. :class:`MailboxFeedback` sends the
question as mail (reply-to = the flow's reply mailbox, correlation id = the flow id) and
pauses; a flow without a persistence of its own is saved with a
:class:`~mailslot_crewai.persistence.MailslotFlowPersistence` on the same client, so the state
is on the broker, not in a file (``SQLiteFlowPersistence`` still works when given).

The answer waits in the reply mailbox, also while no process runs, for that mailbox's
retention: its ``keep`` once it was opened (``open(reply_to, keep=...)``, 7 days by default;
a lapsed lease only makes it offline), the broker's unclaimed-mail retention (7 days by
default) if it never was. After that the sidecar moves it to dead letters (``mailbox
reclaimed``), from where ``requeue`` puts it back. :class:`FlowResumer`, in any process
that reaches the persistence (for the default one: the same broker), takes it, restores the
flow with ``from_pending`` and resumes it with the answer, then acks.

The reply mailbox is a plain mailbox dedicated to flow replies (not a ``request``/``ask``
reply sub-address): its replies are received, acked, and retried like any mail, by
whichever process runs the resumer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mailslot
from crewai.flow.async_feedback import HumanFeedbackPending, PendingFeedbackContext
from crewai.flow.flow import Flow
from crewai.flow.persistence.base import FlowPersistence
from mailslot import sync
from mailslot.sync import SyncMailbox, SyncMailslot, SyncMessage

from .persistence import MailslotFlowPersistence, off_loop
from .replyto import ReplyToInUse, abind_reply_to, bind_reply_to, store_id
from .tools import message_text


def feedback_text(msg: SyncMessage | mailslot.Message) -> str:
    """The feedback a reply carries: ``{"feedback": ...}`` JSON, or the whole text."""
    with contextlib.suppress(Exception):
        body = msg.json()
        if isinstance(body, dict) and "feedback" in body:
            return str(body["feedback"])
    return message_text(msg)


class MailboxFeedback:
    """A ``HumanFeedbackProvider`` that asks ``to`` by mail and pauses the flow.

    ``client`` may be a sync client or mailbox, a factory for one, or None to connect with
    :func:`mailslot.sync.connect` defaults (``MAILSLOT_URL`` or the local broker). The
    question's payload is JSON: ``flow_id``, ``flow_class``, ``method``, ``message``,
    ``output`` (what the method returned, made JSON-safe) and ``emit`` (the outcomes the
    flow routes on, if any). Answer with ``msg.reply("...")`` or ``{"feedback": "..."}``.

    ``persistence`` is what a flow that has none of its own is saved with when it pauses: a
    :class:`MailslotFlowPersistence` on ``client`` by default (``namespace`` "crewai"). Give
    the resuming side the same store: ``FlowResumer``'s default reads it.
    """

    def __init__(
        self,
        client: SyncMailslot | SyncMailbox | Callable[[], SyncMailslot | SyncMailbox] | None = None,
        *,
        to: str,
        reply_to: str,
        priority: str = "normal",
        ttl: float | None = None,
        persistence: FlowPersistence | None = None,
    ) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._persistence = persistence
        self.to = to
        self.reply_to = reply_to
        self.priority = priority
        self.ttl = ttl

    @property
    def client(self) -> SyncMailslot | SyncMailbox:
        """The client, connected on first use: ``@human_feedback(provider=...)`` is evaluated
        when the flow class is defined, long before (and in processes where) it is used."""
        with self._lock:
            c = self._client
            if c is None:
                c = self._client = sync.connect()
            elif callable(c) and not isinstance(c, (SyncMailslot, SyncMailbox)):
                c = self._client = c()
            return c

    @property
    def persistence(self) -> FlowPersistence:
        """The flows' default persistence, made on first use (on this provider's client)."""
        with self._lock:
            if self._persistence is None:
                self._persistence = MailslotFlowPersistence(lambda: self.client)
            return self._persistence

    def request_feedback(self, context: PendingFeedbackContext, flow: Any) -> str:
        if getattr(flow, "persistence", None) is None:
            # CrewAI falls back to SQLite in the user's data directory; the state goes where
            # the mail goes instead, so the resumer need not share a disk with this process.
            flow.persistence = self.persistence
        payload = {
            "flow_id": context.flow_id,
            "flow_class": context.flow_class,
            "method": context.method_name,
            "message": context.message,
            "output": PendingFeedbackContext._make_json_safe(context.method_output),
            "emit": context.emit,
        }
        store = store_id(flow.persistence)  # reply_to serves this store's flows only
        receipt = off_loop(lambda: self._ask(context, payload, store))
        raise HumanFeedbackPending(
            context=context,
            callback_info={
                "mailslot_to": self.to,
                "reply_to": self.reply_to,
                "correlation_id": context.flow_id,
                "message_id": receipt.id,
            },
        )

    def _ask(self, context: PendingFeedbackContext, payload: dict[str, Any], store: str) -> mailslot.Receipt:
        bind_reply_to(self.client, self.reply_to, store)
        return self.client.send(
            self.to,
            payload,
            priority=self.priority,
            ttl=self.ttl,
            reply_to=self.reply_to,
            correlation_id=context.flow_id,
            thread_id=context.flow_id,
            # A retried kickoff does not ask twice; a later pause at the same method does.
            idempotency_key=f"flow-feedback:{context.flow_id}:{context.method_name}:"
            f"{context.requested_at.isoformat()}",
        )


class UnknownFlow(mailslot.MailslotError):
    """A reply whose correlation id names no paused flow (already resumed, or not ours)."""


@dataclass(frozen=True)
class Resumed:
    """One flow resumed from a reply. ``paused`` is True when it paused again."""

    flow_id: str
    result: Any
    feedback: str

    @property
    def paused(self) -> bool:
        return isinstance(self.result, HumanFeedbackPending)


def _restore(flow_cls: type[Flow[Any]], msg: Any, persistence: Any, flow_kwargs: dict[str, Any]) -> Any:
    flow_id = msg.correlation_id
    if not flow_id:
        raise UnknownFlow(f"reply {msg.id} has no correlation id")
    try:
        return flow_cls.from_pending(flow_id, persistence, **flow_kwargs)
    except ValueError as exc:
        raise UnknownFlow(f"no paused flow {flow_id} for reply {msg.id}") from exc


class FlowResumer:
    """Resumes paused flows of ``flow_cls`` as their replies land in ``mailbox``.

    A reply for no paused flow (a duplicate, or a flow resumed already) is terminated so
    it is not redelivered. A resume that raises gives the reply back (``nak`` after
    ``retry_delay``) so the flow can be resumed again.

    ``persistence`` None reads what :class:`MailboxFeedback` saves by default: a
    :class:`MailslotFlowPersistence` connecting with the ``mailslot.sync.connect`` defaults
    (``MAILSLOT_URL`` / ``MAILSLOT_CREDENTIALS``; CrewAI calls persistence synchronously, so
    it cannot share this async mailbox's connection); :meth:`close` closes it.
    """

    def __init__(
        self,
        flow_cls: type[Flow[Any]],
        mailbox: mailslot.Mailbox,
        persistence: FlowPersistence | None = None,
        *,
        retry_delay: float = 5.0,
        **flow_kwargs: Any,
    ) -> None:
        self.flow_cls = flow_cls
        self.mailbox = mailbox
        self._own_persistence = persistence is None
        self.persistence = MailslotFlowPersistence() if persistence is None else persistence
        self.retry_delay = retry_delay
        self.flow_kwargs = flow_kwargs
        self._bound = False

    async def bind(self) -> None:
        """Bind the reply mailbox to this resumer's store, or raise
        :class:`~mailslot_crewai.ReplyToInUse` if it serves another's flows (whose replies
        this resumer would terminate). Done before the first reply is taken."""
        if not self._bound:
            await abind_reply_to(self.mailbox.client, self.mailbox.address, store_id(self.persistence))
            self._bound = True

    def close(self) -> None:
        """Close the default persistence's connection (a persistence given is the caller's)."""
        if self._own_persistence and isinstance(self.persistence, MailslotFlowPersistence):
            self.persistence.close()

    async def resume(self, msg: mailslot.Message) -> Resumed:
        """Resume the flow ``msg`` answers; ack on success."""
        try:
            await self.bind()
        except ReplyToInUse:
            await msg.nak(delay=self.retry_delay)  # theirs: left for their resumer
            raise
        try:
            flow = _restore(self.flow_cls, msg, self.persistence, self.flow_kwargs)
        except UnknownFlow as exc:
            await msg.term(reason=str(exc))
            raise
        text = feedback_text(msg)
        try:
            result = await flow.resume_async(text)
        except BaseException:
            with contextlib.suppress(mailslot.MailslotError):
                await msg.nak(delay=self.retry_delay)
            raise
        await msg.ack()
        return Resumed(flow_id=str(msg.correlation_id), result=result, feedback=text)

    async def resume_next(self, *, timeout: float | None = None) -> Resumed:
        """Wait for the next reply (``Timeout`` after ``timeout`` s) and resume its flow."""
        await self.bind()
        return await self.resume(await self.mailbox.receive(timeout=timeout))

    async def run(self) -> None:
        """Resume flows until the mailbox is closed; unknown replies are skipped."""
        await self.bind()
        async for msg in self.mailbox:
            with contextlib.suppress(UnknownFlow):
                await self.resume(msg)


def resume_from_mailbox(
    flow_cls: type[Flow[Any]],
    mailbox: SyncMailbox,
    persistence: FlowPersistence | None = None,
    *,
    timeout: float | None = None,
    **flow_kwargs: Any,
) -> Resumed:
    """Sync twin of :meth:`FlowResumer.resume_next`, for scripts without an event loop;
    ``persistence`` None is a :class:`MailslotFlowPersistence` on the mailbox's client."""
    if persistence is None:
        persistence = MailslotFlowPersistence(mailbox)
    bind_reply_to(mailbox, mailbox.address, store_id(persistence))
    msg = mailbox.receive(timeout=timeout)
    try:
        flow = _restore(flow_cls, msg, persistence, flow_kwargs)
    except UnknownFlow as exc:
        msg.term(reason=str(exc))
        raise
    text = feedback_text(msg)
    try:
        result = flow.resume(text)
    except BaseException:
        with contextlib.suppress(mailslot.MailslotError):
            msg.nak(delay=5.0)
        raise
    msg.ack()
    return Resumed(flow_id=str(msg.correlation_id), result=result, feedback=text)


__all__ = ["FlowResumer", "MailboxFeedback", "Resumed", "UnknownFlow", "feedback_text", "resume_from_mailbox"]
