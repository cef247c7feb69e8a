"""What the receive loop knows about its levels, sans I/O: the decisions of strict priority.

Which level may hold mail (a bell rang, a redelivery fell due, the heartbeat sweep), which one
to pull next, what a pull's outcome means for its level, the order mail is handed out in, and
when the server will redeliver what was handed out. The loop in :mod:`mailslot._receiving`
does the I/O and asks this module what to do; clocks and timers are passed in, so a test runs
the rules in milliseconds without a server.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from mailslot_broker import protocol as p

from ._receive_failover import NoAnswer
from .message import Message


class Verdict(enum.Enum):
    """What a pull's outcome means for the level walk of one fill."""

    SERVED = "served"  # the level gave mail of its own: stop, hand it out
    NEXT = "next"  # the level answered without mail of its own: go on below it
    SILENT = "silent"  # the level said nothing: wait for it, serve nothing below it


class Levels:
    """Which levels may hold mail, and the buffer of mail pulled but not handed out yet."""

    def __init__(self, *, unknown: bool = True) -> None:
        #: May the level hold deliverable mail? Unknown counts as ``unknown`` (the receive
        #: loop starts at no: the open marks the levels it bound, a bell any other).
        self.maybe = dict.fromkeys(p.PRIORITIES, unknown)
        #: Bumped by every mark: a pull's "empty" only clears ``maybe`` if nothing came since.
        self.gen = dict.fromkeys(p.PRIORITIES, 0)
        #: A bell rang since the level was last pulled (the consumer may lag behind the stream).
        self.rung = dict.fromkeys(p.PRIORITIES, False)
        self.buffer: list[tuple[int, int, int, Message]] = []
        self._tiebreak = itertools.count()
        #: When every level was last looked at (the heartbeat sweep).
        self.swept_at = float("-inf")
        #: The levels that may have held mail when the connection dropped (None while up).
        self.flagged_at_drop: frozenset[p.Priority] | None = None

    # -- what may hold mail ----------------------------------------------------------------------

    def mark(self, prio: p.Priority, *, rung: bool = False) -> None:
        """``prio`` may hold mail: a bell (``rung``), a redelivery due, a reconnect."""
        if rung:
            self.rung[prio] = True
        self.maybe[prio] = True
        self.gen[prio] += 1

    def sweep(self, *, now: float, heartbeat: float, levels: Iterable[p.Priority] = p.PRIORITIES) -> bool:
        """Every ``heartbeat``, look at every level of ``levels`` (the bound ones) once, for
        redeliveries nobody rang for."""
        if now - self.swept_at < heartbeat:
            return False
        self.swept_at = now
        for prio in levels:
            self.maybe[prio] = True
        return True

    def until_sweep(self, *, now: float, heartbeat: float) -> float:
        return max(self.swept_at + heartbeat - now, 0.0)

    # -- the level walk -----------------------------------------------------------------------

    def next_level(self, after: p.Priority | None = None) -> p.Priority | None:
        """The next level to pull, from the top (or below ``after``): the highest that may hold
        mail, unless the buffer already holds mail at least as urgent."""
        for prio in p.PRIORITIES:
            if after is not None and prio <= after:
                continue
            if self.buffer and prio >= self.buffer[0][0]:
                return None
            if self.maybe[prio]:
                return prio
        return None

    def note_drop(self) -> None:
        """The connection dropped: remember which levels were known to may hold mail (a bell,
        a redelivery due, not asked since) before the drop flags every bound level. Once per
        outage: whichever sees it first (the loop, or the disconnect callback) notes it."""
        if self.flagged_at_drop is None:
            self.flagged_at_drop = frozenset(prio for prio in p.PRIORITIES if self.maybe[prio])

    def connected(self) -> None:
        """The connection is up: the next drop is noted afresh."""
        self.flagged_at_drop = None

    def serves_while_down(self) -> bool:
        """May the best buffered mail be handed out while the connection is down? Only if no
        level above it was known to may hold mail when it dropped: that mail is stored and
        comes first once the connection is back (strict priority as far as it was known; a
        bell that would have rung during the outage cannot be heard)."""
        if not self.buffer:
            return False
        self.note_drop()
        best = self.buffer[0][0]
        return not any(prio < best for prio in self.flagged_at_drop or ())

    def begin_pull(self, prio: p.Priority) -> tuple[int, bool]:
        """Before pulling ``prio``: its generation, and whether a bell rang (taken)."""
        rung, self.rung[prio] = self.rung[prio], False
        return self.gen[prio], rung

    @staticmethod
    def wants_grace(got: list[Message], answer: NoAnswer | None, rung: bool) -> bool:
        """The bell can overtake the consumer: the message is stored but not offered yet, and
        a no-wait pull says 404. Then a short waiting pull, instead of sleeping until the
        heartbeat."""
        return not got and answer is None and rung

    def after_pull(
        self,
        prio: p.Priority,
        got: Iterable[Message],
        answer: NoAnswer | None,
        *,
        batch: int,
        gen: int,
        rung: bool,
        retried: bool,
    ) -> Verdict:
        """Take in what a pull of ``prio`` brought (mail of other levels that came along is
        ours too) and say what it means."""
        mine = 0
        for m in got:
            self.push(m)
            mine += m.priority == prio
        if answer is not None and not mine:
            # No answer: the level may hold mail. Skipping it would serve lower priorities
            # before it (a leader election takes seconds). Its bell is kept for the retry.
            self.rung[prio] = self.rung[prio] or rung
            return Verdict.SILENT
        if mine < batch and answer is None and self.gen[prio] == gen and not retried:
            self.maybe[prio] = False  # it said it has no more, and nothing rang since
        return Verdict.SERVED if mine else Verdict.NEXT

    # -- handing out ----------------------------------------------------------------------------

    def push(self, m: Message) -> None:
        heapq.heappush(self.buffer, (int(m.priority), m.seq, next(self._tiebreak), m))

    def best(self) -> int | None:
        """The priority of the best buffered message."""
        return self.buffer[0][0] if self.buffer else None

    def pop(self, *, held_back: Callable[[int], bool], now: float) -> Message | None:
        """The best buffered message (priority, then stream order), unless ``held_back`` says
        its priority must wait. Mail whose TTL ran out while buffered (``now``: wall clock) is
        dropped, never delivered: its removal is the server's job."""
        while self.buffer:
            if held_back(self.buffer[0][0]):
                return None
            m = heapq.heappop(self.buffer)[3]
            if expired(m, now=now):
                continue
            return m
        return None

    def take_buffered(self) -> list[Message]:
        """Empty the buffer (closing: the server gets them back)."""
        out = [entry[3] for entry in self.buffer]
        self.buffer.clear()
        return out


def expired(m: Message, *, now: float) -> bool:
    ttl, sent = m.ttl, m.sent_at
    return bool(ttl and sent and sent.timestamp() + ttl < now)


def redelivery_delay(policy: p.RetryPolicy, delivery_count: int) -> float:
    """When the server redelivers a message handed out for the ``delivery_count``-th time."""
    bo = policy.backoff
    if bo:
        return bo[min(delivery_count - 1, len(bo) - 1)]
    return policy.ack_wait


class Cancellable(Protocol):
    def cancel(self) -> None: ...


#: Schedules a callback after a delay in seconds (``loop.call_later``, or a test's clock).
Schedule = Callable[[float, Callable[[], None]], Cancellable]

#: A wake-up comes this long after the server's redelivery, so the pull finds the message.
_LATE = 0.05


class Redeliveries:
    """Wake-ups for mail handed out and not confirmed settled: the server redelivers it
    without a bell, so the loop must look at its level then. A confirmed ack, nak or term
    cancels its wake-up; an ack that failed (e.g. in a failover) leaves the message to come
    again.

    One timer for the earliest wake-up, not one per message: arming a loop timer per message
    was a quarter of ``receive_batch``'s CPU (bench/README.md). The deadlines sit in a heap;
    a settled or re-armed message leaves a stale entry there, skipped when it comes up and
    swept out once stale entries outnumber live ones."""

    def __init__(
        self,
        *,
        schedule: Schedule,
        due: Callable[[p.Priority], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._schedule = schedule
        self._due = due
        self._clock = clock
        #: seq -> (when it is due, its level): the live wake-ups.
        self._pending: dict[int, tuple[float, p.Priority]] = {}
        #: (when, seq), live or stale: a heap entry is live while ``_pending`` agrees.
        self._heap: list[tuple[float, int]] = []
        self._per_level = dict.fromkeys(p.PRIORITIES, 0)
        self._timer: Cancellable | None = None
        self._timer_at = 0.0

    def __len__(self) -> int:
        return len(self._pending)

    def expects(self, prio: p.Priority) -> bool:
        """Is a message of level ``prio`` expected back (handed out, not settled)?"""
        return self._per_level[prio] > 0

    def arm(self, m: Message, delay: float) -> None:
        """Expect ``m`` back after ``delay`` unless it is settled first (re-arming replaces)."""
        self._set(m.seq, m.priority, delay)

    def settled(self, m: Message, *, redeliver_in: float | None = None) -> None:
        """``m`` was settled; with ``redeliver_in`` (a nak) it comes back after that delay."""
        if redeliver_in is not None and redeliver_in > 0:
            self._set(m.seq, m.priority, redeliver_in)
            return
        self._cancel(m.seq)
        if redeliver_in is not None:
            self._due(m.priority)

    def cancel_all(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending.clear()
        self._heap.clear()
        self._per_level = dict.fromkeys(p.PRIORITIES, 0)

    def _set(self, seq: int, prio: p.Priority, delay: float) -> None:
        at = self._clock() + delay + _LATE
        old = self._pending.get(seq)
        if old is not None:
            self._per_level[old[1]] -= 1
        self._pending[seq] = (at, prio)
        self._per_level[prio] += 1
        heapq.heappush(self._heap, (at, seq))
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._pending):
            self._heap = [(when, s) for s, (when, _) in self._pending.items()]
            heapq.heapify(self._heap)
        if self._timer is None or at < self._timer_at:
            self._rearm(at)

    def _cancel(self, seq: int) -> None:
        old = self._pending.pop(seq, None)
        if old is not None:
            self._per_level[old[1]] -= 1
            if not self._pending and self._timer is not None:
                self._timer.cancel()
                self._timer = None
                self._heap.clear()

    def _rearm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._schedule(max(0.0, at - self._clock()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        # A loop timer may run a hair early (its clock's resolution): a millisecond's slack.
        now = self._clock() + 0.001
        heap, pending = self._heap, self._pending
        woken: list[p.Priority] = []
        while heap and heap[0][0] <= now:
            at, seq = heapq.heappop(heap)
            live = pending.get(seq)
            if live is None or live[0] != at:
                continue  # settled or re-armed since
            del pending[seq]
            self._per_level[live[1]] -= 1
            if live[1] not in woken:
                woken.append(live[1])
        while heap and pending.get(heap[0][1], (None,))[0] != heap[0][0]:
            heapq.heappop(heap)  # stale entries on top would only wake the timer for nothing
        if heap:
            self._rearm(heap[0][0])
        for prio in woken:
            self._due(prio)
