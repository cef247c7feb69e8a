"""Durable request/reply over mailboxes: ``request``, ``ask`` and ``reply_for``.

A request is ordinary mail with ``Mailslot-Reply-To`` set to the asker's *reply sub-address*
(``<address>._replies``) and ``Mailslot-Correlation-Id`` set to the request's message id. The
responder answers with :meth:`Message.reply`, which is an ordinary send to that address, so
the reply is stored durably on ``mbox.<p>.<address>._replies``:

- the asker's receive loop never sees replies (its consumers filter ``mbox.<p>.<address>``
  exactly), and ``ask`` never takes other mail;
- a waiting ``ask`` learns of the reply from the headers-only bell the mail stream republishes
  (``bell.<p>.<address>._replies`` carries the correlation id and the stream sequence), fetches
  it by sequence with a direct get and deletes it: no consumer, no polling;
- a reply that arrived while the asker was away (e.g. its process restarted) waits there until
  :meth:`reply_for` finds it by scanning the reply subjects, or until the mailbox is reclaimed.

Deleting the reply decides who gets it when several replicas of the same agent look for the
same correlation id: the one whose delete succeeds hands it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mailslot_broker import protocol as p
from mailslot_broker.protocol import Header
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import errors as jserr

from . import tracing
from ._boundary import boundary
from ._stored import as_msg, next_stored
from .errors import InvalidInput, MailboxClosed, MessageError, Timeout
from .message import Message
from .outgoing import Outgoing, prepare
from .sending import publish

if TYPE_CHECKING:
    from .mailbox import Mailbox

#: A waiter re-scans this often even without a bell, in case one was missed (reconnect).
_RESCAN_EVERY = 30.0


class Reply(Message):
    """A reply handed out by ``ask``/``reply_for``.

    By default it was removed from the reply sub-address when handed out, so ``ack`` and
    ``in_progress`` are no-ops. With ``reply_for(..., keep=True)`` it stays stored until
    ``ack()`` deletes it, so a consumer that crashes before finishing can collect it again.
    ``nak``/``term`` refuse either way: replies are not redelivered by a consumer.
    """

    __slots__ = ("_kept",)

    def __init__(self, msg: Msg, mailbox: Mailbox | None, *, kept: bool = False) -> None:
        super().__init__(msg, mailbox)
        self._kept = kept

    async def ack(self) -> None:
        if self._settled:
            return
        if self._kept and self._mailbox is not None:
            js = self._mailbox._link.js
            with boundary(), contextlib.suppress(jserr.NotFoundError):
                try:
                    await js.delete_msg(p.MAIL_STREAM, self.seq)
                except jserr.APIError as exc:
                    if not p.jsapi.is_already_gone(exc):
                        raise
        self._settled = True

    async def in_progress(self) -> None:
        return None

    async def nak(self, *, delay: float | None = None) -> None:
        raise MessageError("a reply is not redelivered; collect it again with reply_for(keep=True)")

    async def term(self, *, reason: str | None = None) -> None:
        raise MessageError("a reply cannot be termed")


class ReplyBox:
    """The reply sub-address of one open mailbox: bell subscription and waiters."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mb = mailbox
        self.address = p.reply_address(mailbox.address)
        self._sub: Subscription | None = None
        self._waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def of(cls, mailbox: Mailbox) -> ReplyBox:
        box: ReplyBox | None = mailbox._reply_box
        if box is None:
            from ._agent_replies import AgentReplyBox, is_agent  # an agent credential's replies

            box = mailbox._reply_box = (AgentReplyBox if is_agent(mailbox) else cls)(mailbox)
        await box._start()
        return box

    async def _start(self) -> None:
        async with self._lock:
            if self._sub is not None:
                return
            nc = self._mb._link.nc
            with boundary():
                self._sub = await nc.subscribe(p.bell_subject_all_priorities(self.address), cb=self._on_bell)
                await nc.flush(timeout=10)

    async def close(self) -> None:
        self._closed = True
        for futs in self._waiters.values():
            for f in futs:
                if not f.done():
                    f.set_exception(MailboxClosed(f"mailbox {self._mb.address} is closed"))
        self._waiters.clear()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    # -- finding and taking replies ----------------------------------------------------------

    async def _on_bell(self, msg: Msg) -> None:
        h = msg.headers or {}
        corr = h.get(Header.CORRELATION_ID)
        try:
            seq = int(h.get(Header.NATS_SEQUENCE, "0"))
        except ValueError:
            return
        for f in self._waiters.get(corr or "", []):
            if not f.done():
                f.set_result(seq)

    def register(self, correlation_id: str) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(correlation_id, []).append(fut)
        return fut

    def _unregister(self, correlation_id: str, fut: asyncio.Future[int]) -> None:
        futs = self._waiters.get(correlation_id)
        if futs and fut in futs:
            futs.remove(fut)
            if not futs:
                del self._waiters[correlation_id]

    async def _scan(self, correlation_id: str) -> list[int]:
        """Stream sequences of stored replies with this correlation id (direct gets)."""
        js = self._mb._link.js
        found: list[int] = []
        for prio in p.PRIORITIES:
            seq = 1
            while True:
                raw = await next_stored(js, p.mail_subject(prio, self.address), seq)
                if raw is None:
                    break
                got = int(raw.seq or 0)
                if got < seq:
                    break  # defensive: a server that ignores next_by_subj must not loop us
                if (raw.headers or {}).get(Header.CORRELATION_ID) == correlation_id:
                    found.append(got)
                seq = got + 1
        return found

    async def _take(self, seq: int, correlation_id: str, *, keep: bool = False) -> Reply | None:
        """Fetch the reply at ``seq`` and delete it (unless ``keep``); None if it is gone or
        not ours."""
        js = self._mb._link.js
        try:
            raw = await js.get_msg(p.MAIL_STREAM, seq=seq, direct=True)
        except jserr.NotFoundError:
            return None
        if (raw.headers or {}).get(Header.CORRELATION_ID) != correlation_id:
            return None
        try:
            if not keep:
                await js.delete_msg(p.MAIL_STREAM, seq)
        except (jserr.NotFoundError, jserr.BadRequestError):
            return None  # another replica took it first
        except jserr.APIError as exc:
            if p.jsapi.is_already_gone(exc):
                return None
            raise
        return Reply(as_msg(self._mb._link.nc, raw), self._mb, kept=keep)

    async def collect(
        self,
        correlation_id: str,
        *,
        timeout: float | None,
        fut: asyncio.Future[int] | None = None,
        keep: bool = False,
    ) -> Reply:
        """Wait for the reply with ``correlation_id``; ``fut`` is a waiter registered before
        the request went out, so a fast reply cannot ring before anyone listens."""
        if fut is None:
            fut = self.register(correlation_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                if self._closed or self._mb.closed:
                    raise MailboxClosed(f"mailbox {self._mb.address} is closed")
                with boundary():
                    for seq in await self._scan(correlation_id):
                        got = await self._take(seq, correlation_id, keep=keep)
                        if got is not None:
                            return got
                while True:
                    wait = _RESCAN_EVERY
                    if deadline is not None:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise Timeout(
                                f"no reply for {correlation_id} to {self._mb.address} within {timeout:g} s"
                            )
                        wait = min(wait, remaining)
                    try:
                        seq = await asyncio.wait_for(asyncio.shield(fut), wait)
                    except asyncio.TimeoutError:
                        break  # rescan
                    self._unregister(correlation_id, fut)
                    fut = self.register(correlation_id)
                    with boundary():
                        got = await self._take(seq, correlation_id, keep=keep)
                    if got is not None:
                        return got
        finally:
            self._unregister(correlation_id, fut)
            if not fut.done():
                fut.cancel()


# -- the Mailbox methods -------------------------------------------------------------------------


def prepare_request(
    mb: Mailbox,
    to: str,
    payload: Any,
    *,
    priority: p.Priority | str | int,
    thread_id: str | None,
    idempotency_key: str | None,
    ttl: float | timedelta | None,
    headers: Mapping[str, str] | None,
) -> Outgoing:
    mb._check_usable()
    reply_to = p.reply_address(mb.address)
    try:
        p.validate_address(reply_to)
    except Exception as exc:
        raise InvalidInput(
            f"mailbox {mb.address} is too long to receive replies (its reply address {reply_to!r} "
            f"must fit {p.MAX_ADDRESS_TOKENS} tokens and {p.MAX_ADDRESS_LENGTH} characters)"
        ) from exc
    out = prepare(
        to,
        payload,
        sender=mb.address,
        max_payload=mb._link.max_payload,
        priority=priority,
        ttl=ttl,
        idempotency_key=idempotency_key,
        headers=headers,
        reply_to=reply_to,
        thread_id=thread_id,
    )
    out.headers[Header.CORRELATION_ID] = out.id
    return out


async def publish_and_collect(mb: Mailbox, out: Outgoing, *, timeout: float | None) -> Reply:
    """Publish a prepared request and wait for its reply. The waiter is registered before the
    request goes out, so a fast reply cannot ring before anyone listens."""
    with tracing.asking(out):  # the request's send and its reply's delivery are within
        box = await ReplyBox.of(mb)
        fut = box.register(out.id)
        try:
            await publish(mb._link, out)
        except BaseException:
            box._unregister(out.id, fut)
            fut.cancel()
            raise
        got = await box.collect(out.id, timeout=timeout, fut=fut)
        tracing.delivered(got)
        return got


async def collect_reply(mb: Mailbox, correlation_id: str, *, timeout: float | None, keep: bool) -> Reply:
    mb._check_usable()
    if not isinstance(correlation_id, str) or not correlation_id:
        raise InvalidInput("correlation_id must be a non-empty str")
    box = await ReplyBox.of(mb)
    got = await box.collect(correlation_id, timeout=timeout, keep=keep)
    tracing.delivered(got)
    return got


__all__ = ["Reply", "ReplyBox", "collect_reply", "prepare_request", "publish_and_collect"]
