"""The reply sub-address of a mailbox: the :class:`Reply` handed out and the :class:`ReplyBox`
that waits for replies (bell subscription, waiters, scan, take). The request side, and which
box a connection gets, is :mod:`mailslot.requests`; an agent credential's box is
:mod:`mailslot._agent_replies`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from mailslot_broker.deadletters import delete_stored
from mailslot_broker.protocol import Header
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import errors as jserr

from ._boundary import boundary
from ._stored import as_msg, next_stored
from .errors import MailboxClosed, MessageError, Timeout
from .message import Message

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
            with boundary():
                await delete_stored(self._mailbox._link.js, p.MAIL_STREAM, self.seq)  # gone: fine
        self._settled = True

    async def in_progress(self) -> None:
        return None

    async def nak(self, *, delay: float | None = None) -> None:
        raise MessageError("a reply is not redelivered; collect it again with reply_for(keep=True)")

    async def term(self, *, reason: str | None = None) -> None:
        raise MessageError("a reply cannot be termed")


def _stored_for(subject: str | None, prefix: str, address: str) -> bool:
    """Is ``subject`` ``<prefix>.<p>.<address>``, exactly this address's?"""
    if not subject or not subject.startswith(prefix + "."):
        return False
    try:
        return p.parse_mail_subject(subject)[1] == address
    except (ValueError, IndexError):
        return False


class ReplyBox:
    """The reply sub-address of one open mailbox: bell subscription and waiters."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mb = mailbox
        self.address = p.reply_address(mailbox.address)
        self._sub: Subscription | None = None
        self._waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._lock = asyncio.Lock()
        self._closed = False

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
        # Only a bell the stream rang for this reply address: a push consumer can deliver to
        # any subject (its deliver subject is in the request body, which no permission sees),
        # but what it delivers keeps the subject it was stored on.
        if not _stored_for(msg.subject, p.BELL_PREFIX, self.address):
            return
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
        if not _stored_for(raw.subject, p.MAIL_PREFIX, self.address):
            return None  # stored in another mailbox: not a reply to us, whatever it says
        try:
            if not keep:
                await natscompat.delete_msg(js, p.MAIL_STREAM, seq)  # taken: no erase
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


__all__ = ["Reply", "ReplyBox"]
