"""The receive loop of a mailbox: strict priority across levels, no polling.

One durable pull consumer per priority. The loop pulls ``no_wait`` from the highest level that
may hold mail and serves the first non-empty one. It knows which levels may hold mail from the
headers-only "bell" the stream republishes after storing each message. When every level is
empty it leaves one waiting pull per level at the server (re-armed only when it expires, after
``heartbeat``), so new and redelivered mail is pushed without an extra round trip and an idle
mailbox sends nothing in between. Redeliveries of messages it handed out (ack wait, nak delay)
are scheduled locally.

Across a reconnect (the broker restarted, or the connection dropped): the waiting pulls and an
in-flight pull died with the old connection, so the loop forgets them when it drops, waits for
the connection to come back (bounded, then :class:`~mailslot.Disconnected`), and looks at
every level again once it is back; the mailbox re-ensures its consumers meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import time
from typing import TYPE_CHECKING, Any, cast

from mailslot_broker import protocol as p
from nats.aio.msg import Msg

from ._boundary import boundary
from .errors import Disconnected, JetStreamUnavailable, MailslotError, Timeout
from .message import Message

if TYPE_CHECKING:
    from .client import Mailslot

_PULL_REPLY_TIMEOUT = 5.0
#: How long a pull rung by a bell waits for the consumer to catch up with the stream.
_BELL_GRACE = 0.25


log = logging.getLogger("mailslot.receive")


class _ConsumerMissing(Exception):
    pass


#: Put on the reply queue to end a pull whose reply cannot come any more (connection lost).
_ABORT = Msg(_client=cast(Any, None), subject="", headers={"Status": "000"})


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

    async def _ensure_consumers(self) -> None:
        raise NotImplementedError

    def _check_usable(self) -> None:
        raise NotImplementedError

    def _wrap(self, msg: Msg) -> Message:
        return Message(msg, self)  # type: ignore[arg-type]  # always a Mailbox at run time

    # -- reconnects -------------------------------------------------------------------------------

    def _abort_pull(self) -> None:
        """End the pull in flight now: its reply cannot come (the connection dropped, or the
        mailbox is closing and unsubscribes)."""
        if self._current_token is not None:
            self._replies.put_nowait(_ABORT)

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
                    if wtoken == token:  # an idle pull ended (expired, or no consumer)
                        del self._waiting[prio]
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
    ) -> list[Message] | None:
        """No-wait pull of up to ``batch`` messages (or a pull that waits up to ``expires``);
        None when the reply never came."""
        token = str(next(self._tokens))
        consumer = p.consumer_name(self.address, prio)
        body = json.dumps(p.pull_request(batch=batch, no_wait=expires is None, expires=expires)).encode()
        out: list[Message] = []
        if self._closed or not self._client.nc.is_connected:
            return None  # no answer could come: leave the level flagged
        self._current_token = token
        try:
            self.pull_requests += 1
            await self._client.nc.publish(
                p.pull_subject(p.MAIL_STREAM, consumer), body, reply=f"{self._inbox}.{token}"
            )
            while len(out) < batch:
                if not self._replies.empty():
                    msg = self._replies.get_nowait()
                else:
                    try:
                        msg = await asyncio.wait_for(self._replies.get(), _PULL_REPLY_TIMEOUT)
                    except asyncio.TimeoutError:
                        return out or None
                if msg is _ABORT:
                    return out or None
                status = msg.headers.get("Status") if msg.headers else None
                if status:
                    if status == "503":
                        raise _ConsumerMissing(consumer)
                    break  # 404 no messages, 408 expired, 409 limits
                out.append(self._wrap(msg))
        finally:
            self._current_token = None
            while not self._replies.empty():  # deliveries that raced the status reply
                late = self._replies.get_nowait()
                if late is not _ABORT and not (late.headers and late.headers.get("Status")):
                    out.append(self._wrap(late))
        return out

    async def _fill(self, batch: int) -> bool:
        """Pull from the highest level that may hold mail and is above what is buffered.
        True if a pull got no answer (its level stays flagged)."""
        top = self._buffer[0][0] if self._buffer else len(p.PRIORITIES)
        unanswered = False
        for prio in p.PRIORITIES:
            if prio >= top:
                return unanswered
            if not self._maybe[prio]:
                continue
            gen = self._gen[prio]
            rung, self._rung[prio] = self._rung[prio], False
            try:
                got = await self._pull(prio, batch)
            except _ConsumerMissing:
                # The consumer was removed (inactivity, a reaper, a broker that lost it):
                # recreate and retry.
                got = await self._recreate_and_pull(prio, batch)
            retried = False
            if got == [] and rung:
                # The bell can overtake the consumer: the message is stored but the consumer
                # does not offer it yet, and a no-wait pull says 404. Give it a moment with a
                # short waiting pull instead of sleeping until the heartbeat.
                try:
                    got = await self._pull(prio, 1, expires=_BELL_GRACE)
                except _ConsumerMissing:
                    got = await self._recreate_and_pull(prio, 1)
                retried = True
            if got is None:
                unanswered = True
                continue  # no answer (reconnecting?): leave the level flagged
            for m in got:
                self._push(m)
            if len(got) < batch and self._gen[prio] == gen and not retried:
                self._maybe[prio] = False
            if got:
                return unanswered
        return unanswered

    async def _recreate_and_pull(self, prio: p.Priority, batch: int) -> list[Message] | None:
        try:
            with boundary():
                await self._ensure_consumers()
            return await self._pull(prio, batch)
        except _ConsumerMissing:
            pass  # created, yet not there: JetStream is still recovering (just restarted?)
        except (Disconnected, Timeout, JetStreamUnavailable) as exc:
            log.debug("recreating the consumers of %s: %r", self.address, exc)
        except MailslotError as exc:
            if self._client.nc.is_connected:
                raise
            log.debug("recreating the consumers of %s: %r", self.address, exc)
        return None  # leave the level flagged: looked at again soon

    def _pop(self) -> Message | None:
        while self._buffer:
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
        self._timers.pop(m.seq, None)
        if not m.settled and not self._closed:
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
        nc = self._client.nc
        unanswered = 0
        while True:
            self._check_usable()
            if not nc.is_connected:
                m = self._pop()  # mail already here is still ours to hand out
                if m is not None:
                    return m
                await self._ride_out(started, deadline)
                continue
            self._wake.clear()
            try:
                with boundary():
                    unanswered_now = await self._fill(batch)
                m = self._pop()
                if m is not None:
                    return m
                with boundary():
                    await self._arm_idle_pulls()
            except MailslotError:
                if nc.is_connected:
                    raise
                continue  # the connection dropped meanwhile: ride it out
            if self._buffer:
                continue  # an idle pull delivered while we armed the others
            wait = self.heartbeat
            if unanswered_now and nc.is_connected:
                # A pull got no answer (a consumer being recreated, a connection that dropped
                # and came back): look again soon, not after a heartbeat.
                unanswered = min(unanswered + 1, 6)
                wait = 0.05 * 2**unanswered
            else:
                unanswered = 0
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if not nc.is_connected:
                        raise self._client._disconnected_error(self._client._outage() or 0.0)
                    return None
                wait = min(wait, remaining)
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except asyncio.TimeoutError:
                if deadline is None or time.monotonic() < deadline:
                    # Heartbeat: look everywhere once, for redeliveries nobody rang for.
                    for prio in p.PRIORITIES:
                        self._maybe[prio] = True
