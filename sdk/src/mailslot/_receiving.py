"""The receive loop of a mailbox: strict priority across levels, no polling.

One durable pull consumer per priority level, but only for the levels that may hold mail (the
*bound* levels): the open binds the levels holding stored mail, a bell for any other level binds
it (creates its consumer, idempotent: a replica's is shared) before it is pulled. The loop pulls
``no_wait`` from the highest level that may hold mail and serves the first non-empty one. It
knows which levels may hold mail from the headers-only "bell" the stream republishes after
storing each message. When every level is empty it leaves one waiting pull per bound level at
the server (re-armed only when it expires, after ``heartbeat``), so new and redelivered mail is
pushed without an extra round trip and an idle mailbox sends nothing in between. Redeliveries
of messages it handed out (ack wait, nak delay) are scheduled locally, and every ``heartbeat``
the loop looks at every bound level once.

A bound level that stayed drained for a ``heartbeat`` (nothing pending at its consumer, no
delivery awaiting an ack: one CONSUMER.INFO) is let go: no more waiting pulls for it, and the
server removes its consumer after its inactivity threshold (never while acks are pending, so a
delivery's count and its redelivery survive; a replica still pulling keeps it). An idle open
mailbox with no mail has no consumers at all.

Across a reconnect (the broker restarted, or the connection dropped): the waiting pulls and an
in-flight pull died with the old connection, so the loop forgets them when it drops, waits for
the connection to come back (bounded, then :class:`~mailslot.Disconnected`), and looks at
every level again once it is back; the mailbox re-ensures its consumers meanwhile. Mail
already buffered is handed out while the connection is down only if no level above it was
known to may hold mail when it dropped (a bell rang, a redelivery fell due): strict priority
holds through a reconnect as far as it was known.

Across a failover (a cluster electing a new leader for one of the consumers): a pull that goes
unanswered, is refused (503: no responders, the consumer has no leader or is gone) or is ended
by a leadership change says nothing about that level, so the loop does not skip it. It stays
at that level, serving only mail of higher priority, and asks again (50 ms, doubling to 0.5 s)
until the level answers; a refused level also gets its consumers re-created in the background
(a consumer that is really gone answers 503 too). A level unanswered for the mailbox's
``failover_timeout`` (default 30 s) raises :class:`~mailslot.Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import nats.errors
from mailslot_broker import protocol as p
from nats.aio.msg import Msg
from nats.js import errors as jserr

from . import tracing
from ._boundary import boundary, translate
from ._receive_failover import FailoverWait, NoAnswer, retry_delay
from ._receive_pulls import Pulls, ReceiveHost
from ._receive_state import Levels, Redeliveries, Verdict, redelivery_delay
from .errors import MailslotError
from .link import Link
from .message import Message

#: A consumer creation that got no answer (the meta leader moves): the level is waited for.
_UNANSWERED = (nats.errors.TimeoutError, nats.errors.NoRespondersError, jserr.ServiceUnavailableError)

#: How long a pull rung by a bell waits for the consumer to catch up with the stream.
_BELL_GRACE = 0.25

log = logging.getLogger("mailslot.receive")


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # nobody awaits it any more: no "exception never retrieved" log


def _call_later(delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
    return asyncio.get_running_loop().call_later(delay, callback)


class Receiver:
    """The receive loop of one mailbox, owned by it: bells, wake-ups, the level walk and the
    waits. The decisions (which level next, what a pull's outcome means, hand-out order,
    redelivery wake-ups, the failover wait) live in :mod:`mailslot._receive_state` and
    :mod:`mailslot._receive_failover`, the pulls in :mod:`mailslot._receive_pulls`; this class
    runs them against the server. Receives are sequential (the mailbox's lock)."""

    def __init__(self, host: ReceiveHost, *, link: Link, wrap: Callable[[Msg], Message]) -> None:
        self._host = host
        self._link = link
        self._wrap = wrap
        self.levels = Levels(unknown=False)
        self.failover = FailoverWait()
        self.redeliveries = Redeliveries(schedule=_call_later, due=self._redelivery_due)
        self.pulls = Pulls(host, link=link, wrap=wrap, on_mail=self._idle_delivered, on_level=self._mark)
        self._wake = asyncio.Event()
        self._recreating: asyncio.Task[None] | None = None
        #: The deadline of the receive in progress: no pull waits for its reply beyond it.
        self._pull_deadline: float | None = None
        #: The levels whose consumer we created (or found): pulled, swept, kept waited on.
        self._bound: set[p.Priority] = set()
        #: When a bound level last had mail for us, and when we last asked if it drained.
        self._active_at: dict[p.Priority, float] = {}
        self._checked_at: dict[p.Priority, float] = {}

    # -- bound levels -----------------------------------------------------------------------------

    @property
    def bound_levels(self) -> frozenset[p.Priority]:
        return frozenset(self._bound)

    def bound(self, levels: frozenset[p.Priority], *, replace: bool = False) -> None:
        """``levels`` have their consumers (the open, a re-ensure); with ``replace`` they are
        the only levels that need one (the others hold no mail: a bell brings them back)."""
        if replace:
            self._bound.intersection_update(levels)
        now = time.monotonic()
        for prio in levels:
            self._bound.add(prio)
            self._active_at[prio] = now
            self._mark(prio)

    async def _bind(self, prio: p.Priority) -> None:
        """Create the consumer of ``prio`` (a bell rang for a level we had none for)."""
        await self._host._add_consumers((prio,))
        self._bound.add(prio)
        self._active_at[prio] = time.monotonic()

    async def _release_drained(self) -> None:
        """Let go of bound levels drained for a ``heartbeat``: nothing buffered or expected
        back here, and their consumer has nothing pending and no ack awaited (a replica's
        deliveries count too). The server then removes the consumer by its inactivity
        threshold; a bell binds the level again."""
        now = time.monotonic()
        heartbeat = self._host.heartbeat
        levels = self.levels
        for prio in sorted(self._bound):
            if levels.maybe[prio] or now - self._active_at.get(prio, now) < heartbeat:
                continue
            if now - self._checked_at.get(prio, float("-inf")) < heartbeat:
                continue
            if self.redeliveries.expects(prio) or any(e[0] == prio for e in levels.buffer):
                continue
            self._checked_at[prio] = now
            try:
                ci = await self._link.js.consumer_info(
                    p.MAIL_STREAM, p.consumer_name(self._host.address, prio), timeout=2.0
                )
            except jserr.NotFoundError:
                pass
            except Exception:  # no verdict (a failover): look again next heartbeat
                continue
            else:
                if ci.num_pending or ci.num_ack_pending:
                    continue
            if levels.maybe[prio]:  # a bell rang meanwhile
                continue
            self._bound.discard(prio)

    # -- the mailbox's lifecycle ------------------------------------------------------------------

    def stop(self) -> None:
        """The mailbox is closing: wake a receive in progress (it raises MailboxClosed) and
        end its pull (the mailbox unsubscribes: its reply cannot come)."""
        self._wake.set()
        self._abort_pull()

    def take_buffered(self) -> list[Message]:
        """Closing, after unsubscribing: forget the idle pulls, hand back the buffer."""
        self.pulls.waiting.clear()
        return self.levels.take_buffered()

    def forget_pulls(self) -> None:
        """After a reconnect: the idle pulls died with the old connection; look everywhere."""
        self.pulls.waiting.clear()
        self.look_everywhere()

    def look_everywhere(self) -> None:
        for prio in sorted(self._bound):
            self._mark(prio)

    def _abort_pull(self) -> None:
        """End the pull in flight now: its reply cannot come (the connection dropped, or the
        mailbox is closing and unsubscribes). A consumer re-creation in flight stops too (a
        closing mailbox must not bring its consumers back; after a reconnect the mailbox
        re-ensures them itself)."""
        self.pulls.abort()
        task = self._recreating
        if task is not None and not task.done():
            task.cancel()

    def connection_lost(self) -> None:
        """The connection dropped (or closed): the server forgot our waiting pulls, and the
        reply to a pull in flight will never come. Forget them, flag every level, wake up."""
        self.pulls.waiting.clear()
        self._abort_pull()
        self.levels.note_drop()
        self.look_everywhere()

    async def _ride_out(self, started: float, deadline: float | None) -> None:
        """Wait while the connection is down. Returns once it is back (or something woke
        the loop); raises Disconnected at ``deadline``, or once this receive (``started``)
        waited ``receive_outage_timeout`` for the connection: a dead broker must not look
        like an empty mailbox."""
        link = self._link
        while True:
            self._host._check_usable()
            down = link.outage()
            if down is None:
                return
            link.check_open()
            waited = min(time.monotonic() - started, down)
            remaining = link.receive_outage_timeout - waited
            if deadline is not None:
                remaining = min(remaining, deadline - time.monotonic())
            if remaining <= 0:
                raise link.disconnected_error(down)
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(remaining, 0.1))

    # -- wake-ups -------------------------------------------------------------------------------

    def _mark(self, prio: p.Priority, *, rung: bool = False) -> None:
        self.levels.mark(prio, rung=rung)
        self._wake.set()

    async def on_bell(self, msg: Msg) -> None:
        """The bell subscription's callback, until :meth:`bell` gets its subjects alone."""
        self.bell(msg.subject)

    def bell(self, subject: str) -> None:
        """The stream stored mail for us at ``subject``'s level (natscompat.deliver_subjects_only)."""
        try:
            prio, _ = p.parse_mail_subject(subject)
        except (ValueError, IndexError):
            return
        self._mark(prio, rung=True)

    def _idle_delivered(self, m: Message) -> None:
        self._active_at[m.priority] = time.monotonic()
        self.levels.push(m)
        self._wake.set()

    # -- settlement (from the mailbox's messages) -------------------------------------------------

    def _redelivery_due(self, prio: p.Priority) -> None:
        if not self._host.closed:
            self._mark(prio)

    def settled(self, m: Message, *, redeliver_in: float | None = None) -> None:
        """``m`` was acked, naked (``redeliver_in``: when it comes back) or termed."""
        self.redeliveries.settled(m, redeliver_in=None if self._host.closed else redeliver_in)

    def touched(self, m: Message) -> None:
        """``m`` is still being worked on: the server waits a full ack wait again."""
        self.redeliveries.arm(m, self._host.policy.ack_wait)

    # -- pulling --------------------------------------------------------------------------------

    async def _pull_level(
        self, prio: p.Priority, batch: int, *, expires: float | None = None
    ) -> tuple[list[Message], NoAnswer | None]:
        got, answer = await self.pulls.pull(prio, batch, expires=expires, deadline=self._pull_deadline)
        if answer is NoAnswer.REFUSED:
            # Nobody serves the consumer: its leader is being elected, or it is gone (removed
            # by a reaper, lost by a broker). Re-create it in the background (idempotent; it
            # blocks while the meta leader moves, so the loop does not wait for it).
            self._start_recreate()
        return got, answer

    def _start_recreate(self) -> None:
        if self._host.closed or (self._recreating is not None and not self._recreating.done()):
            return
        if not self.failover.recreate_due(time.monotonic()):
            return
        task: asyncio.Task[None] = asyncio.ensure_future(self._recreate())
        task.add_done_callback(_retrieve)
        self._recreating = task

    async def _recreate(self) -> None:
        try:
            await self._host._ensure_consumers()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            mapped = translate(exc)
            if mapped is not exc:
                mapped.__cause__ = exc
            self.failover.recreate_error = mapped
            log.debug("re-creating the consumers of %s: %r", self._host.address, mapped)
        else:
            self.failover.recreate_error = None

    async def _fill(self, batch: int) -> p.Priority | None:
        """Pull from the highest level that may hold mail, down to the best mail buffered.
        Returns the level it stopped at because that level said nothing (no reply, refused):
        the loop must wait for it, and serve nothing below it meanwhile."""
        levels = self.levels
        prio = levels.next_level()
        while prio is not None:
            if prio not in self._bound:
                try:
                    await self._bind(prio)
                except (
                    nats.errors.TimeoutError,
                    nats.errors.NoRespondersError,
                    jserr.ServiceUnavailableError,
                ) as exc:
                    # Unanswered (the meta leader moves): wait for the level as for a silent pull.
                    log.debug("creating the consumer of %s level %s: %r", self._host.address, prio.label, exc)
                    self.failover.silent(
                        prio,
                        NoAnswer.UNANSWERED,
                        now=time.monotonic(),
                        consumer=p.consumer_name(self._host.address, prio),
                    )
                    return prio
            gen, rung = levels.begin_pull(prio)
            got, answer = await self._pull_level(prio, batch)
            retried = levels.wants_grace(got, answer, rung)
            if retried:
                got, answer = await self._pull_level(prio, 1, expires=_BELL_GRACE)
            verdict = levels.after_pull(prio, got, answer, batch=batch, gen=gen, rung=rung, retried=retried)
            if verdict is Verdict.SILENT:
                assert answer is not None
                consumer = p.consumer_name(self._host.address, prio)
                self.failover.silent(prio, answer, now=time.monotonic(), consumer=consumer)
                # An idle pull left there died with the leader: re-armed once the level is back.
                self.pulls.waiting.pop(prio, None)
                return prio
            self.failover.answered(prio)
            if verdict is Verdict.SERVED:
                self._active_at[prio] = time.monotonic()
                return None
            prio = levels.next_level(after=prio)
        return None

    async def _pause_blocked(self, wait: float, blocked: p.Priority) -> None:
        """Sleep until the blocked level is asked again. Bells (mail stored elsewhere) do not
        cut it short, or busy lower levels would turn the wait into a storm of pulls; closing,
        a dropped connection or mail at or above the blocked level do."""
        until = time.monotonic() + wait
        nc = self._link.nc
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0 or self._host.closed or not nc.is_connected:
                return
            best = self.levels.best()
            if best is not None and best <= blocked:
                return
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    # -- receiving ----------------------------------------------------------------------------

    def pop(self) -> Message | None:
        """The best buffered message, unless a level above it is being waited for; the loop
        then expects it back unless it is settled in time."""
        m = self.levels.pop(held_back=self.failover.holds_back, now=time.time())
        if m is not None:
            self.redeliveries.arm(m, redelivery_delay(self._host.policy, m.delivery_count))
            tracing.delivered(m)
        return m

    def blocked_note(self) -> str:
        """For the Timeout of a receive that ended while waiting for a level."""
        return self.failover.note(now=time.monotonic())

    async def next(self, timeout: float | None, batch: int) -> Message | None:
        """The next message, pulling up to ``batch``; None once ``timeout`` passed."""
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        self._pull_deadline = deadline
        try:
            return await self._next_until(started, deadline, batch)
        finally:
            self._pull_deadline = None

    async def _next_until(self, started: float, deadline: float | None, batch: int) -> Message | None:
        host, levels = self._host, self.levels
        nc = self._link.nc
        retries = 0
        while True:
            host._check_usable()
            if not nc.is_connected:
                # Mail already here is still ours to hand out, unless a level above it was
                # known to may hold mail: that level is asked first once the connection is back.
                m = self.pop() if levels.serves_while_down() else None
                if m is not None:
                    return m
                await self._ride_out(started, deadline)
                continue
            # Heartbeat: look everywhere once, for redeliveries nobody rang for (a wall
            # clock, so that receives with short timeouts sweep too).
            levels.connected()
            levels.sweep(now=time.monotonic(), heartbeat=host.heartbeat, levels=self._bound)
            self._wake.clear()
            blocked: p.Priority | None = None
            try:
                with boundary():
                    blocked = await self._fill(batch)
                m = self.pop()
                if m is not None:
                    return m
                blocked = self.failover.blocked if blocked is None else blocked  # still waiting for it
                if blocked is None:
                    with boundary():
                        await self._release_drained()
                        await self.pulls.arm_idle(self._bound)
            except MailslotError:
                if nc.is_connected:
                    raise
                continue  # the connection dropped meanwhile: ride it out
            if blocked is None and levels.buffer:
                continue  # an idle pull delivered while we armed the others
            if blocked is not None:
                self.failover.check(now=time.monotonic(), address=host.address)
                wait = retry_delay(retries)
                retries += 1
            else:
                retries = 0
                wait = levels.until_sweep(now=time.monotonic(), heartbeat=host.heartbeat)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if not nc.is_connected:
                        raise self._link.disconnected_error(self._link.outage() or 0.0)
                    return None
                wait = min(wait, remaining)
            if blocked is not None:
                await self._pause_blocked(wait, blocked)
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
