"""The receive loop of a mailbox: strict priority across levels, no polling.

One durable pull consumer per priority. The loop pulls ``no_wait`` from the highest level that
may hold mail and serves the first non-empty one. It knows which levels may hold mail from the
headers-only "bell" the stream republishes after storing each message. When every level is
empty it leaves one waiting pull per level at the server (re-armed only when it expires, after
``heartbeat``), so new and redelivered mail is pushed without an extra round trip and an idle
mailbox sends nothing in between. Redeliveries of messages it handed out (ack wait, nak delay)
are scheduled locally, and every ``heartbeat`` the loop looks at every level once.

Across a reconnect (the broker restarted, or the connection dropped): the waiting pulls and an
in-flight pull died with the old connection, so the loop forgets them when it drops, waits for
the connection to come back (bounded, then :class:`~mailslot.Disconnected`), and looks at
every level again once it is back; the mailbox re-ensures its consumers meanwhile.

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
import enum
import heapq
import itertools
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any, cast

from mailslot_broker import protocol as p
from nats.aio.msg import Msg

from ._boundary import boundary, translate
from .errors import (
    AuthenticationFailed,
    InvalidInput,
    MailslotError,
    PermissionDenied,
    Unavailable,
)
from .message import Message

if TYPE_CHECKING:
    from .client import Mailslot

#: How long the reply to a pull may take, beyond its own expiry, before the pull counts as
#: unanswered (its leader died with the request, or the cluster still routes to it). Asked
#: again soon, so a reply slower than this costs a repeated pull, not a message.
_PULL_REPLY_TIMEOUT = 2.0
#: How long a pull rung by a bell waits for the consumer to catch up with the stream.
_BELL_GRACE = 0.25
#: How soon a level that did not answer is asked again: doubling from the first to the last.
_RETRY_FIRST = 0.05
_RETRY_MAX = 0.5
#: A refused level has its consumers re-created (in the background) at most this often.
_RECREATE_EVERY = 3.0
#: A level not asked for this long starts its failover clock afresh when asked again.
_STALE_AFTER = 5.0
DEFAULT_FAILOVER_TIMEOUT = 30.0

#: Errors from re-creating the consumers that no waiting cures: raised at once.
_PERMANENT = (PermissionDenied, AuthenticationFailed, InvalidInput)

log = logging.getLogger("mailslot.receive")


class _NoAnswer(enum.Enum):
    """Why a pull says nothing about its level."""

    UNANSWERED = "no reply"  # timed out, or its connection dropped
    REFUSED = "refused"  # 503 (no responders), or ended by a leadership change


#: Put on the reply queue to end a pull whose reply cannot come any more (connection lost).
_ABORT = Msg(_client=cast(Any, None), subject="", headers={"Status": "000"})

#: 409 replies that end a pull without saying the level is empty.
_NOT_AN_ANSWER_409 = ("leadership change", "consumer deleted")


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # nobody awaits it any more: no "exception never retrieved" log


class PriorityReceiving:
    """Mixin holding the receive machinery; :class:`mailslot.Mailbox` owns the state."""

    _client: Mailslot
    address: str
    policy: p.RetryPolicy
    heartbeat: float
    _closed: bool
    _maybe: dict[p.Priority, bool]
    _gen: dict[p.Priority, int]
    _rung: dict[p.Priority, bool]
    _buffer: list[tuple[int, int, int, Message]]
    _tiebreak: itertools.count[int]
    _wake: asyncio.Event
    _replies: asyncio.Queue[Msg]
    _current_token: str | None
    _tokens: itertools.count[int]
    _inbox: str
    _timers: dict[int, asyncio.TimerHandle]
    _waiting: dict[p.Priority, tuple[str, float]]
    pull_requests: int

    _failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT
    # Failover state (class defaults: the mailbox's constructor does not know about them).
    #: The level the loop waits for (its pull got no answer): nothing below it is served.
    _blocked: p.Priority | None = None
    #: Since when ``_blocked`` has not answered, and when it was last asked.
    _blocked_since: float | None = None
    _blocked_asked: float = 0.0
    #: Why, for the error at the bound: the last failed pull or consumer re-creation.
    _blocked_cause: BaseException | None = None
    _recreating: asyncio.Task[None] | None = None
    _recreated_at: float = float("-inf")
    _recreate_error: BaseException | None = None
    #: When the loop last looked at every level (the heartbeat sweep).
    _swept_at: float = float("-inf")
    #: The deadline of the receive in progress: no pull waits for its reply beyond it.
    _pull_deadline: float | None = None

    async def _ensure_consumers(self) -> None:
        raise NotImplementedError

    def _check_usable(self) -> None:
        raise NotImplementedError

    def _wrap(self, msg: Msg) -> Message:
        return Message(msg, self)  # type: ignore[arg-type]  # always a Mailbox at run time

    @property
    def failover_timeout(self) -> float:
        """Seconds a receive waits for a priority that does not answer (its consumer is
        electing a leader) before it raises :class:`~mailslot.Unavailable`; default 30. No
        lower priority is served meanwhile. Settable per mailbox; ``math.inf`` waits forever."""
        return self._failover_timeout

    @failover_timeout.setter
    def failover_timeout(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or math.isnan(seconds):
            raise InvalidInput(f"failover_timeout must be a number of seconds, got {seconds!r}")
        if seconds < 0:
            raise InvalidInput(f"failover_timeout must not be negative, got {seconds!r}")
        self._failover_timeout = float(seconds)

    # -- reconnects -------------------------------------------------------------------------------

    def _abort_pull(self) -> None:
        """End the pull in flight now: its reply cannot come (the connection dropped, or the
        mailbox is closing and unsubscribes). A consumer re-creation in flight stops too (a
        closing mailbox must not bring its consumers back; after a reconnect the mailbox
        re-ensures them itself)."""
        if self._current_token is not None:
            self._replies.put_nowait(_ABORT)
        task = self._recreating
        if task is not None and not task.done():
            task.cancel()

    def _connection_lost(self) -> None:
        """The connection dropped (or closed): the server forgot our waiting pulls, and the
        reply to a pull in flight will never come. Forget them, flag every level, wake up."""
        self._waiting.clear()
        self._abort_pull()
        for prio in p.PRIORITIES:
            self._mark(prio)

    async def _ride_out(self, started: float, deadline: float | None) -> None:
        """Wait while the connection is down. Returns once it is back (or something woke
        the loop); raises Disconnected at ``deadline``, or once this receive (``started``)
        waited ``receive_outage_timeout`` for the connection: a dead broker must not look
        like an empty mailbox."""
        client = self._client
        while True:
            self._check_usable()
            down = client._outage()
            if down is None:
                return
            client._check_open()
            waited = min(time.monotonic() - started, down)
            remaining = client._receive_outage_timeout - waited
            if deadline is not None:
                remaining = min(remaining, deadline - time.monotonic())
            if remaining <= 0:
                raise client._disconnected_error(down)
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(remaining, 0.1))

    # -- wake-ups -------------------------------------------------------------------------------

    def _mark(self, prio: p.Priority) -> None:
        self._maybe[prio] = True
        self._gen[prio] += 1
        self._wake.set()

    async def _on_bell(self, msg: Msg) -> None:
        try:
            prio, _ = p.parse_mail_subject(msg.subject)
        except (ValueError, IndexError):
            return
        self._rung[prio] = True
        self._mark(prio)

    async def _on_pull_reply(self, msg: Msg) -> None:
        # Active pulls are sequential (under the receive lock), so everything arriving while
        # one runs is handed to it; JetStream delivers mail with its own subject, and only
        # status replies carry the request's token. Mail arriving between pulls comes from an
        # idle waiting pull (or a pull we stopped waiting for): it is ours to deliver.
        status = msg.headers.get("Status") if msg.headers else None
        token = msg.subject.rsplit(".", 1)[-1]
        if status:
            if token == self._current_token:
                self._replies.put_nowait(msg)
            else:
                for prio, (wtoken, _) in list(self._waiting.items()):
                    if wtoken == token:  # an idle pull ended
                        del self._waiting[prio]
                        if status not in ("404", "408"):
                            # Not its expiry: refused, or ended by a leadership change. Mail
                            # may wait there that nobody will push: look at the level.
                            self._mark(prio)
            return
        with contextlib.suppress(ValueError, IndexError):
            self._waiting.pop(p.parse_mail_subject(msg.subject)[0], None)
        if self._current_token is not None:
            self._replies.put_nowait(msg)
        else:
            self._push(self._wrap(msg))
            self._wake.set()

    async def _arm_idle_pulls(self) -> None:
        """While idle, keep one waiting pull per level at the server, so new mail (and mail
        redelivered after a crash elsewhere) is pushed to us without a round trip after the
        bell. They expire after ``heartbeat``; ``close()`` drops them at once, because the
        server forgets pull requests whose reply subject lost its subscriber."""
        now = time.monotonic()
        for prio in p.PRIORITIES:
            if not self._client.nc.is_connected:
                return  # they would die with the connection; re-armed once it is back
            current = self._waiting.get(prio)
            if current is not None and current[1] > now:
                continue
            token = f"w{next(self._tokens)}"
            self._waiting[prio] = (token, now + self.heartbeat)
            body = json.dumps(p.pull_request(batch=1, expires=self.heartbeat)).encode()
            self.pull_requests += 1
            await self._client.nc.publish(
                p.pull_subject(p.MAIL_STREAM, p.consumer_name(self.address, prio)),
                body,
                reply=f"{self._inbox}.{token}",
            )

    def _push(self, m: Message) -> None:
        heapq.heappush(self._buffer, (int(m.priority), m.seq, next(self._tiebreak), m))

    # -- pulling --------------------------------------------------------------------------------

    async def _pull(
        self, prio: p.Priority, batch: int, *, expires: float | None = None
    ) -> tuple[list[Message], _NoAnswer | None]:
        """No-wait pull of up to ``batch`` messages (or a pull that waits up to ``expires``):
        what came, and None if the level answered (an empty list then means it has no
        deliverable mail), else why it did not finish answering. Mail of other levels may
        come along (late replies to earlier pulls, idle pulls)."""
        token = str(next(self._tokens))
        consumer = p.consumer_name(self.address, prio)
        body = json.dumps(p.pull_request(batch=batch, no_wait=expires is None, expires=expires)).encode()
        if self._closed or not self._client.nc.is_connected:
            return [], _NoAnswer.UNANSWERED  # no answer could come
        out: list[Message] = []
        answer: _NoAnswer | None = None
        self._current_token = token
        try:
            self.pull_requests += 1
            await self._client.nc.publish(
                p.pull_subject(p.MAIL_STREAM, consumer), body, reply=f"{self._inbox}.{token}"
            )
            wait = (expires or 0.0) + _PULL_REPLY_TIMEOUT
            if self._pull_deadline is not None:  # receive(timeout=t) returns within about t
                wait = min(wait, max(self._pull_deadline - time.monotonic(), 0.05))
            while len(out) < batch:
                if not self._replies.empty():
                    msg = self._replies.get_nowait()
                else:
                    try:
                        msg = await asyncio.wait_for(self._replies.get(), wait)
                    except asyncio.TimeoutError:
                        answer = _NoAnswer.UNANSWERED
                        break
                if msg is _ABORT:
                    answer = _NoAnswer.UNANSWERED
                    break
                status = msg.headers.get("Status") if msg.headers else None
                if status:
                    description = (msg.headers.get("Description") or "").lower() if msg.headers else ""
                    if status == "503" or (
                        status == "409" and any(s in description for s in _NOT_AN_ANSWER_409)
                    ):
                        answer = _NoAnswer.REFUSED
                    break  # else 404 no messages, 408 expired, 409 limits: the level is done
                out.append(self._wrap(msg))
        finally:
            self._current_token = None
            while not self._replies.empty():  # deliveries that raced the status reply
                late = self._replies.get_nowait()
                if late is not _ABORT and not (late.headers and late.headers.get("Status")):
                    out.append(self._wrap(late))
        return out, answer

    async def _pull_level(
        self, prio: p.Priority, batch: int, *, expires: float | None = None
    ) -> tuple[list[Message], _NoAnswer | None]:
        got, answer = await self._pull(prio, batch, expires=expires)
        if answer is _NoAnswer.REFUSED:
            # Nobody serves the consumer: its leader is being elected, or it is gone (removed
            # by a reaper, lost by a broker). Re-create it in the background (idempotent; it
            # blocks while the meta leader moves, so the loop does not wait for it).
            self._start_recreate()
        return got, answer

    def _start_recreate(self) -> None:
        now = time.monotonic()
        if self._closed or (self._recreating is not None and not self._recreating.done()):
            return
        if now - self._recreated_at < _RECREATE_EVERY:
            return
        self._recreated_at = now
        task: asyncio.Task[None] = asyncio.ensure_future(self._recreate())
        task.add_done_callback(_retrieve)
        self._recreating = task

    async def _recreate(self) -> None:
        try:
            await self._ensure_consumers()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            mapped = translate(exc)
            if mapped is not exc:
                mapped.__cause__ = exc
            self._recreate_error = mapped
            log.debug("re-creating the consumers of %s: %r", self.address, mapped)
        else:
            self._recreate_error = None

    async def _fill(self, batch: int) -> p.Priority | None:
        """Pull from the highest level that may hold mail, down to the best mail buffered.
        Returns the level it stopped at because that level said nothing (no reply, refused):
        the loop must wait for it, and serve nothing below it meanwhile."""
        for prio in p.PRIORITIES:
            if self._buffer and prio >= self._buffer[0][0]:
                return None
            if not self._maybe[prio]:
                continue
            gen = self._gen[prio]
            rung, self._rung[prio] = self._rung[prio], False
            got, answer = await self._pull_level(prio, batch)
            retried = False
            if not got and answer is None and rung:
                # The bell can overtake the consumer: the message is stored but the consumer
                # does not offer it yet, and a no-wait pull says 404. Give it a moment with a
                # short waiting pull instead of sleeping until the heartbeat.
                got, answer = await self._pull_level(prio, 1, expires=_BELL_GRACE)
                retried = True
            mine = 0
            for m in got:  # mail of other levels that came along is ours too
                self._push(m)
                mine += m.priority == prio
            if answer is not None and not mine:
                # No answer: the level may hold mail. Wait for it; skipping it would serve
                # lower priorities before it (a leader election takes seconds).
                self._rung[prio] = self._rung[prio] or rung
                self._level_silent(prio, answer)
                return prio
            self._level_answered(prio)
            if mine < batch and answer is None and self._gen[prio] == gen and not retried:
                self._maybe[prio] = False
            if mine:
                return None
        return None

    # -- failover -------------------------------------------------------------------------------

    def _level_silent(self, prio: p.Priority, why: _NoAnswer) -> None:
        now = time.monotonic()
        if self._blocked != prio or self._blocked_since is None or now - self._blocked_asked > _STALE_AFTER:
            self._blocked_since = now
        self._blocked = prio
        self._blocked_asked = now
        self._blocked_cause = self._recreate_error or TimeoutError(
            f"the pull of {p.consumer_name(self.address, prio)} was {why.value}"
        )
        # An idle pull left there died with the leader: re-armed once the level is back.
        self._waiting.pop(prio, None)

    def _level_answered(self, prio: p.Priority) -> None:
        if self._blocked == prio:
            self._blocked = None
            self._blocked_since = None
            self._blocked_cause = None

    def _check_blocked(self) -> None:
        """Raise once the level the loop waits for has said nothing for ``failover_timeout``
        (or re-creating its consumers failed in a way no waiting cures)."""
        if isinstance(self._recreate_error, _PERMANENT):
            err, self._recreate_error = self._recreate_error, None
            raise err
        if self._blocked is None or self._blocked_since is None:
            return
        silent = time.monotonic() - self._blocked_since
        if silent < self._failover_timeout:
            return
        prio, cause = self._blocked, self._blocked_cause
        self._blocked_since = None  # the next receive waits a full bound again
        why = "nobody serves its consumer (no leader: is a majority of the cluster up?)"
        if isinstance(cause, MailslotError):
            why += f"; re-creating it failed: {type(cause).__name__}: {cause}"
        raise Unavailable(
            f"priority {prio.label} of mailbox {self.address} has not answered for {silent:.1f} s "
            f"(failover_timeout {self._failover_timeout:g} s): {why}"
        ) from cause

    def _blocked_note(self) -> str:
        """For the Timeout of a receive that ended while waiting for a level."""
        if self._blocked is None or self._blocked_since is None:
            return ""
        silent = time.monotonic() - self._blocked_since
        return f" (priority {self._blocked.label} has not answered for {silent:.1f} s: a leader election?)"

    async def _pause_blocked(self, wait: float, blocked: p.Priority) -> None:
        """Sleep until the blocked level is asked again. Bells (mail stored elsewhere) do not
        cut it short, or busy lower levels would turn the wait into a storm of pulls; closing,
        a dropped connection or mail at or above the blocked level do."""
        until = time.monotonic() + wait
        nc = self._client.nc
        while True:
            remaining = until - time.monotonic()
            if remaining <= 0 or self._closed or not nc.is_connected:
                return
            if self._buffer and self._buffer[0][0] <= blocked:
                return
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), remaining)

    # -- handing out ----------------------------------------------------------------------------

    def _pop(self) -> Message | None:
        """The best buffered message, unless a level above it is being waited for."""
        while self._buffer:
            if self._blocked is not None and self._buffer[0][0] > self._blocked:
                return None
            m = heapq.heappop(self._buffer)[3]
            if self._expired(m):
                # Expired while buffered: never deliver it; its removal is the server's job.
                continue
            self._arm_redelivery(m)
            return m
        return None

    @staticmethod
    def _expired(m: Message) -> bool:
        ttl, sent = m.ttl, m.sent_at
        return bool(ttl and sent and sent.timestamp() + ttl < time.time())

    def _redelivery_delay(self, m: Message) -> float:
        bo = self.policy.backoff
        if bo:
            return bo[min(m.delivery_count - 1, len(bo) - 1)]
        return self.policy.ack_wait

    def _arm_redelivery(self, m: Message, delay: float | None = None) -> None:
        """If ``m`` is not settled in time the server redelivers it without a bell: wake up
        then to pick it up."""
        loop = asyncio.get_running_loop()
        old = self._timers.pop(m.seq, None)
        if old is not None:
            old.cancel()
        d = self._redelivery_delay(m) if delay is None else delay
        self._timers[m.seq] = loop.call_later(d + 0.05, self._redelivery_due, m)

    def _redelivery_due(self, m: Message) -> None:
        # Still armed: nothing confirmed its settlement (a confirmed ack, nak or term cancels
        # the timer). An ack that failed, e.g. in a failover, leaves the message to come again.
        self._timers.pop(m.seq, None)
        if not self._closed:
            self._mark(m.priority)

    def _settled(self, m: Message, *, redeliver_in: float | None = None) -> None:
        t = self._timers.pop(m.seq, None)
        if t is not None:
            t.cancel()
        if redeliver_in is not None and not self._closed:
            loop = asyncio.get_running_loop()
            if redeliver_in <= 0:
                self._mark(m.priority)
            else:
                self._timers[m.seq] = loop.call_later(redeliver_in + 0.05, self._mark, m.priority)

    def _touched(self, m: Message) -> None:
        self._arm_redelivery(m, delay=self.policy.ack_wait)

    # -- receiving ----------------------------------------------------------------------------

    async def _next(self, timeout: float | None, batch: int) -> Message | None:
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        self._pull_deadline = deadline
        try:
            return await self._next_until(started, deadline, batch)
        finally:
            self._pull_deadline = None

    async def _next_until(self, started: float, deadline: float | None, batch: int) -> Message | None:
        nc = self._client.nc
        retries = 0
        while True:
            self._check_usable()
            if not nc.is_connected:
                m = self._pop()  # mail already here is still ours to hand out
                if m is not None:
                    return m
                await self._ride_out(started, deadline)
                continue
            now = time.monotonic()
            if now - self._swept_at >= self.heartbeat:
                # Heartbeat: look everywhere once, for redeliveries nobody rang for (a wall
                # clock, so that receives with short timeouts sweep too).
                self._swept_at = now
                for prio in p.PRIORITIES:
                    self._maybe[prio] = True
            self._wake.clear()
            blocked: p.Priority | None = None
            try:
                with boundary():
                    blocked = await self._fill(batch)
                m = self._pop()
                if m is not None:
                    return m
                blocked = self._blocked if blocked is None else blocked  # still waiting for it
                if blocked is None:
                    with boundary():
                        await self._arm_idle_pulls()
            except MailslotError:
                if nc.is_connected:
                    raise
                continue  # the connection dropped meanwhile: ride it out
            if blocked is None and self._buffer:
                continue  # an idle pull delivered while we armed the others
            if blocked is not None:
                self._check_blocked()
                wait = min(_RETRY_FIRST * 2**retries, _RETRY_MAX)
                retries += 1
            else:
                retries = 0
                wait = max(self._swept_at + self.heartbeat - time.monotonic(), 0.0)
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if not nc.is_connected:
                        raise self._client._disconnected_error(self._client._outage() or 0.0)
                    return None
                wait = min(wait, remaining)
            if blocked is not None:
                await self._pause_blocked(wait, blocked)
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
