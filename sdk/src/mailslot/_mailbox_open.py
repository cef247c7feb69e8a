"""Binding a mailbox to the server: open, re-bind after a reconnect, unbind on close.

The open subscribes, takes the lease and binds the consumers of the levels that hold mail, all
or nothing (a level without mail gets its consumer when its bell rings: the receive loop,
:mod:`mailslot._receiving`). What existed
before is noted first; if anything fails, or the open is cancelled, the writes in flight are
let finish (so nothing lands after the undo), then the undo removes what this open created,
and puts back a record it overwrote (:mod:`mailslot._mailbox_undo`), before the error (or
the cancellation) propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from ._boundary import boundary
from ._mailbox_undo import Before, Written, levels_with_mail, remove_created
from ._ride_out import ride_out
from .lease import Lease

if TYPE_CHECKING:
    from .mailbox import Mailbox

#: How long a failed open() waits for its writes in flight, and then for removing what it
#: created, before giving up (a lease left behind lapses by itself after its TTL).
_UNDO_TIMEOUT = 10.0

log = logging.getLogger("mailslot.mailbox")


async def add_consumers(
    js: JetStreamContext,
    address: str,
    *,
    policy: p.RetryPolicy,
    inactive_threshold: float,
    patience: float = 0.0,
    levels: Iterable[p.Priority] = p.PRIORITIES,
) -> None:
    """Create (or keep: same config) the consumers of ``levels``. Every creation is waited
    for, also when one fails, so none lands after an undo; then the first error is raised.
    Creating one with the config it has changes nothing, so unanswered creations (a leader
    election) are asked again for up to ``patience`` seconds."""
    levels = tuple(levels)
    if not levels:
        return

    async def once() -> None:
        results = await asyncio.gather(
            *(
                js.add_consumer(
                    p.MAIL_STREAM,
                    p.mail_consumer_config(
                        address, prio, policy=policy, inactive_threshold=inactive_threshold
                    ),
                )
                for prio in levels
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    await ride_out(once, patience=patience)


@dataclass
class _Progress:
    """How far an open() got: what it found, then what it wrote."""

    before: Before | None = None
    written: Written | None = None


async def open_mailbox(mb: Mailbox) -> None:
    """Run the open of ``mb``; on any failure or cancellation undo it first."""
    progress = _Progress()
    work = asyncio.ensure_future(_steps(mb, progress))
    try:
        with boundary():
            await asyncio.shield(work)
    except BaseException as exc:
        again = await _finish(_undo(mb, work, progress), what=f"undoing open({mb.address})")
        if again and not isinstance(exc, asyncio.CancelledError):
            raise asyncio.CancelledError from exc
        raise


async def _steps(mb: Mailbox, progress: _Progress) -> None:
    nc, js = mb._link.nc, mb._link.js
    pulls = mb._receiver.pulls
    pulls.inbox = nc.new_inbox()
    # The bell subscription goes out before the look at which levels hold mail: mail stored
    # after that look rings (and the loop creates its level's consumer then). The look is
    # sent behind the SUBs while the server's verdict on them is awaited.
    bells = p.bell_subject_all_priorities(mb.address)
    made = await _subscribe(mb, (pulls.inbox + ".*", pulls.on_reply), (bells, mb._receiver.on_bell))
    for sub in mb._subs:
        if sub.subject == bells:  # a bell's dozen headers go unread: not parsed either
            natscompat.deliver_subjects_only(sub, mb._receiver.bell)
    confirmed, read = await asyncio.gather(
        _confirm(mb, made),
        ride_out(lambda: Before.read(js, mb.address), patience=mb.failover_timeout),
        return_exceptions=True,
    )
    for outcome in (confirmed, read):  # a refused subscription is the more telling error
        if isinstance(outcome, BaseException):
            raise outcome
    assert isinstance(read, Before)
    before = progress.before = read  # nothing is written before this is known
    card, agent = mb.card.model_dump_json().encode(), mb._link.agent is not None
    lease = mb._lease = Lease(js, mb.address, mb.ttl, card, keep=mb.keep, agent=agent)
    # The undo only removes entries still at the revisions this open wrote, never a
    # concurrent opener's. They come from the write acks (also those of an acquire that
    # failed half-way), except for an agent credential: it writes through the agent writes
    # stream, whose revisions are not the buckets', so those are read back, while the
    # consumers are created.
    try:
        await lease.acquire()
    finally:
        if not agent:
            progress.written = Written(
                record=lease.record_revision,
                lease=lease.revision,
                lease_not_ours=lease.revision is None and lease.create_refused,
            )
    if agent:
        written = asyncio.ensure_future(Written.read(js, mb.address))
        try:
            await mb._add_consumers(before.levels, patience=mb.failover_timeout)
        finally:
            progress.written = await written
    else:
        await mb._add_consumers(before.levels, patience=mb.failover_timeout)
    mb._receiver.bound(before.levels)
    mb._lease.start(on_recreated=mb._ensure_consumers)


async def _subscribe(
    mb: Mailbox, *subs: tuple[str, Callable[[Msg], Awaitable[None]]]
) -> list[tuple[str, Any]]:
    """Send the SUBs of ``subs``, kept in ``mb._subs`` (so an undo removes them); the
    server's verdict on them is :func:`_confirm`'s. Without a guard (a connection not made
    by ``connect``) each is confirmed as it is made, at once."""
    nc, guard = mb._link.nc, mb._link.guard
    made: list[tuple[str, Any]] = []
    if guard is None:
        outcomes = await asyncio.gather(
            *(nc.subscribe(subject, cb=cb) for subject, cb in subs), return_exceptions=True
        )
        mb._subs.extend(sub for sub in outcomes if not isinstance(sub, BaseException))
        for sub in outcomes:
            if isinstance(sub, BaseException):
                raise sub
        return made
    for subject, cb in subs:
        sub = await guard.queue_subscription(subject, cb=cb)
        mb._subs.append(sub)
        made.append((subject, sub))
    return made


async def _confirm(mb: Mailbox, made: list[tuple[str, Any]]) -> None:
    """Raise if the server refused any subscription :func:`_subscribe` queued."""
    if made and mb._link.guard is not None:
        await mb._link.guard.confirm(*made)


async def ensure_consumers(mb: Mailbox) -> None:
    """Bring back the consumers a mailbox may need and may have lost: those of every level
    that holds mail (one STREAM.INFO; also finds mail whose bell was lost with a connection;
    mail handed out and not acked is still stored, so its level is kept). A level without
    mail needs none until its bell. Creating an existing one changes nothing."""
    js = mb._link.js
    levels = await ride_out(lambda: levels_with_mail(js, mb.address), patience=mb.failover_timeout)
    await mb._add_consumers([prio for prio in p.PRIORITIES if prio in levels], patience=mb.failover_timeout)
    mb._receiver.bound(levels, replace=True)


async def _undo(mb: Mailbox, work: asyncio.Future[None], progress: _Progress) -> None:
    """Undo a failed open: only what it created, never what existed before."""
    mb._closed = True  # a failed open leaves a dead Mailbox: nothing may re-bind it
    if not work.done():  # cancelled: let the requests in flight finish first
        await asyncio.wait([work], timeout=_UNDO_TIMEOUT)
        work.cancel()
    if work.done():
        _retrieve(work)  # the caller raises its own error
    try:
        if mb._lease is not None:
            await mb._lease.stop()
        for sub in mb._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    finally:
        _forget_bells(mb)
    mb._subs.clear()
    if progress.before is None:
        return  # failed before anything was written
    await remove_created(mb._link.js, mb.address, progress.before, progress.written)


def _forget_bells(mb: Mailbox) -> None:
    """The bell subscription's entry in the connection's subject-only table holds the
    receiver: dropped whatever happens to the close (a bell still coming then takes nats-py's
    path to ``on_bell``, which does the same)."""
    for sub in mb._subs:
        natscompat.forget_subjects_only(sub)


async def unbind(mb: Mailbox) -> None:
    """Closing: see :meth:`Mailbox.close` (``mb`` is already marked closed)."""
    mb._receiver.stop()
    nc = mb._link.nc
    try:
        if mb._reply_box is not None:
            with contextlib.suppress(Exception):
                await mb._reply_box.close()
        if mb._lease is not None:
            await mb._lease.stop()
        mb._receiver.redeliveries.cancel_all()
        # Unsubscribing first makes the server drop our idle waiting pulls; draining hands
        # over anything already on its way, which is then given back with the buffer.
        # Draining needs a round trip: not while the connection is down. Both subscriptions
        # at once, so their round trips overlap.

        async def let_go(sub: Subscription) -> None:
            with contextlib.suppress(Exception):
                if nc.is_connected:
                    await asyncio.wait_for(sub.drain(), 5.0)
                else:
                    await sub.unsubscribe()

        await asyncio.gather(*(let_go(sub) for sub in mb._subs))
        _forget_bells(mb)  # before the list is cleared (the finally below covers a failed close)
        mb._subs.clear()
        buffered = mb._receiver.take_buffered()
        for m in buffered if nc.is_connected else ():
            with contextlib.suppress(Exception):
                await m._msg.nak()
    finally:
        _forget_bells(mb)  # also when the close failed or was cut short: nothing kept alive
        mb._link.mailboxes.discard(mb)


async def rebind(mb: Mailbox) -> None:
    """After a reconnect: see :meth:`Mailbox._rebind`."""
    if mb._closed:
        return
    mb._receiver.forget_pulls()
    delay = 0.1
    for _ in range(10):
        if mb._closed or not mb._link.nc.is_connected:
            return  # closed, or dropped again: the next reconnect re-binds
        try:
            with boundary():
                await mb._ensure_consumers()
                if mb._lease is not None:
                    await mb._lease.renew()
            break
        except Exception as exc:  # JetStream may still be recovering after a restart
            log.info("re-binding %s after a reconnect: %r (retrying)", mb.address, exc)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)
    if not mb._closed:
        mb._receiver.look_everywhere()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # nobody awaits it any more: no "exception never retrieved" log


async def _finish(undo: Coroutine[Any, Any, None], *, what: str) -> bool:
    """Run ``undo`` to the end even if the caller is cancelled meanwhile (bounded by
    ``_UNDO_TIMEOUT``); True if a cancellation arrived while it ran. Its own errors are only
    logged: the caller raises the error that made it undo."""
    task = asyncio.ensure_future(asyncio.wait_for(undo, 2 * _UNDO_TIMEOUT))
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:
            break
    if not task.cancelled() and task.exception() is not None:
        log.warning("%s failed (its lease lapses by itself): %r", what, task.exception())
    return cancelled
