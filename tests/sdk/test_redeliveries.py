"""The receive loop's redelivery wake-ups (mailslot._receive_state.Redeliveries), without a
server: one loop timer for every message handed out and not settled, on a clock the test moves.
The real-server side is test_mailbox.py's redelivery tests and test_durability.py."""

from __future__ import annotations

from collections.abc import Callable

from mailslot._receive_state import Redeliveries, redelivery_delay
from mailslot_broker import protocol as p
from receive_support import mail

CRITICAL, URGENT, NORMAL, LOW = p.PRIORITIES


class FakeClock:
    """``loop.call_later`` on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[float, Callable[[], None], FakeClock.Handle]] = []

    class Handle:
        def __init__(self) -> None:
            self.cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeClock.Handle:
        handle = FakeClock.Handle()
        self.pending.append((self.now + delay, callback, handle))
        return handle

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [entry for entry in self.pending if entry[0] <= self.now]
        self.pending = [entry for entry in self.pending if entry[0] > self.now]
        for _, callback, handle in sorted(due, key=lambda entry: entry[0]):
            if not handle.cancelled:
                callback()


def redeliveries() -> tuple[FakeClock, list[p.Priority], Redeliveries]:
    clock, woken = FakeClock(), []
    return clock, woken, Redeliveries(schedule=clock.call_later, due=woken.append, clock=lambda: clock.now)


def test_redelivery_delay_follows_backoff_then_ack_wait() -> None:
    assert redelivery_delay(p.RetryPolicy(ack_wait=30), 1) == 30
    policy = p.RetryPolicy(ack_wait=1, backoff=(1.0, 5.0, 20.0))
    assert [redelivery_delay(policy, n) for n in (1, 2, 3, 4, 9)] == [1.0, 5.0, 20.0, 20.0, 20.0]


def test_unsettled_mail_wakes_its_level_just_after_the_server_redelivers_it() -> None:
    clock, woken, timers = redeliveries()
    timers.arm(mail(URGENT, 1), 2.0)
    clock.advance(2.0)
    assert woken == []  # the server redelivers at 2 s: look a moment later
    clock.advance(0.06)
    assert woken == [URGENT] and len(timers) == 0


def test_settled_mail_wakes_nothing_and_touched_mail_rearms() -> None:
    clock, woken, timers = redeliveries()
    acked, touched = mail(NORMAL, 1), mail(LOW, 2)
    timers.arm(acked, 2.0)
    timers.arm(touched, 2.0)
    clock.advance(1.5)
    timers.settled(acked)
    timers.arm(touched, 2.0)  # in progress: a full ack wait again
    clock.advance(1.0)
    assert woken == []  # 2.5 s: the first timer would have fired
    clock.advance(1.1)
    assert woken == [LOW]


def test_a_nak_wakes_its_level_after_its_delay_or_at_once() -> None:
    clock, woken, timers = redeliveries()
    later, now = mail(URGENT, 1), mail(NORMAL, 2)
    timers.arm(later, 30.0)
    timers.arm(now, 30.0)
    timers.settled(later, redeliver_in=5.0)
    timers.settled(now, redeliver_in=0.0)
    assert woken == [NORMAL]
    clock.advance(5.1)
    assert woken == [NORMAL, URGENT]
    clock.advance(60)
    assert woken == [NORMAL, URGENT]  # the ack-wait timers were replaced


def test_a_batch_handed_out_keeps_one_timer_and_wakes_each_level_once() -> None:
    clock, woken, timers = redeliveries()
    batch = [mail(NORMAL if seq % 2 else LOW, seq) for seq in range(1, 501)]
    for m in batch:
        timers.arm(m, 30.0)
    live = [h for _, _, h in clock.pending if not h.cancelled]
    assert len(live) == 1 and len(timers) == 500  # one loop timer, not 500
    for m in batch[:499]:
        timers.settled(m)
    assert len(timers) == 1
    timers.arm(mail(URGENT, 501), 30.0)  # the next arm sweeps the 499 stale entries out
    assert len(timers) == 2 and len(timers._heap) == 2
    clock.advance(30.1)
    assert woken == [LOW, URGENT] and len(timers) == 0  # only the unsettled ones' levels


def test_settled_mail_does_not_pile_up_behind_a_long_ack_wait() -> None:
    clock, woken, timers = redeliveries()
    for seq in range(10_000):  # a receive-and-ack loop: each message settled at once
        m = mail(NORMAL, seq)
        timers.arm(m, 30.0)
        timers.settled(m)
    timers.arm(mail(LOW, 20_000), 30.0)
    for seq in range(10_000, 10_500):
        timers.arm(mail(NORMAL, seq), 30.0)
        timers.settled(mail(NORMAL, seq))
    assert len(timers) == 1 and len(timers._heap) <= 2 * 1 + 65
    clock.advance(31)
    assert woken == [LOW]


def test_an_earlier_wake_up_moves_the_one_timer_forward() -> None:
    clock, woken, timers = redeliveries()
    timers.arm(mail(LOW, 1), 30.0)
    timers.arm(mail(URGENT, 2), 1.0)  # e.g. a backoff's first step
    clock.advance(1.1)
    assert woken == [URGENT]
    clock.advance(29)
    assert woken == [URGENT, LOW]


def test_closing_cancels_every_wake_up() -> None:
    clock, woken, timers = redeliveries()
    for seq in range(3):
        timers.arm(mail(NORMAL, seq), 1.0)
    timers.settled(mail(LOW, 9), redeliver_in=1.0)
    timers.cancel_all()
    clock.advance(10)
    assert woken == [] and len(timers) == 0


def test_redeliveries_say_which_levels_expect_mail_back() -> None:
    clock, woken, timers = redeliveries()
    urgent, low = mail(URGENT, 1), mail(LOW, 2)
    timers.arm(urgent, 2.0)
    timers.arm(low, 5.0)
    assert timers.expects(URGENT) and timers.expects(LOW) and not timers.expects(NORMAL)
    timers.settled(urgent)
    assert not timers.expects(URGENT) and timers.expects(LOW)
    clock.advance(5.1)  # fired: the level is woken, and no longer expects it
    assert woken == [LOW] and not timers.expects(LOW)
    timers.arm(low, 1.0)
    timers.cancel_all()
    assert not timers.expects(LOW)
