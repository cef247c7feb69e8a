"""The receive loop's decisions, without a server: strict priority, hand-out order and the
failover wait, driven with made-up pull outcomes and clocks (redelivery wake-ups:
test_redeliveries.py).

The loop itself (pulls, bells, idle pulls, waits) is covered against a real nats-server by
test_mailbox.py, test_reconnect.py, test_durability.py and tests/cluster/test_priority_failover.py.
These run in milliseconds and pin the rules those tests can only reach by timing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import cast

import mailslot
import pytest
from mailslot._receive_failover import (
    DEFAULT_FAILOVER_TIMEOUT,
    RECREATE_EVERY,
    STALE_AFTER,
    FailoverWait,
    NoAnswer,
    failover_seconds,
    refusal,
    retry_delay,
)
from mailslot._receive_state import Levels, Verdict, expired
from mailslot_broker import protocol as p
from receive_support import mail

CRITICAL, URGENT, NORMAL, LOW = p.PRIORITIES
NEVER: Callable[[int], bool] = lambda best: False  # noqa: E731


def drain(
    levels: Levels, *, held_back: Callable[[int], bool] = NEVER, now: float = 0.0
) -> list[tuple[int, int]]:
    out = []
    while (m := levels.pop(held_back=held_back, now=now)) is not None:
        out.append((int(m.priority), m.seq))
    return out


# -- which level next -------------------------------------------------------------------------


def test_levels_are_pulled_highest_first_and_only_where_mail_may_be() -> None:
    levels = Levels()
    assert levels.next_level() is CRITICAL  # unknown counts as "may hold mail"
    assert [levels.next_level(after=prio) for prio in (CRITICAL, URGENT, NORMAL, LOW)] == [
        URGENT,
        NORMAL,
        LOW,
        None,
    ]
    levels.maybe.update({CRITICAL: False, URGENT: False})
    assert levels.next_level() is NORMAL
    levels.maybe[NORMAL] = levels.maybe[LOW] = False
    assert levels.next_level() is None


def test_buffered_mail_stops_the_walk_at_its_own_priority() -> None:
    levels = Levels()
    levels.push(mail(URGENT, 7))
    assert levels.next_level() is CRITICAL  # above the buffered mail: still asked
    assert levels.next_level(after=CRITICAL) is None  # urgent and below: the buffer serves first


def test_while_down_buffered_mail_waits_only_for_levels_flagged_before_the_drop() -> None:
    levels = Levels(unknown=False)
    assert not levels.serves_while_down()  # nothing buffered
    levels.push(mail(LOW, 1))
    assert levels.serves_while_down()
    levels.connected()
    levels.mark(CRITICAL, rung=True)  # a bell above it before the drop: the low mail waits
    levels.note_drop()
    for prio in p.PRIORITIES:  # the drop's own flagging (every bound level) does not count
        levels.mark(prio)
    levels.note_drop()  # noted once per outage: a second note keeps the first
    assert not levels.serves_while_down()
    levels.push(mail(CRITICAL, 2))  # mail as urgent as any flagged level is here already
    assert levels.serves_while_down()
    assert drain(levels) == [(CRITICAL, 2), (LOW, 1)]
    levels.connected()
    levels.maybe = dict.fromkeys(p.PRIORITIES, False)
    levels.push(mail(LOW, 3))
    assert levels.serves_while_down()  # the loop notes the drop itself if it sees it first
    for prio in p.PRIORITIES:
        levels.mark(prio)
    levels.note_drop()
    assert levels.serves_while_down()  # nothing was known above it


def test_an_empty_answer_clears_the_level_unless_it_rang_meanwhile() -> None:
    levels = Levels()
    gen, rung = levels.begin_pull(NORMAL)
    assert levels.after_pull(NORMAL, [], None, batch=1, gen=gen, rung=rung, retried=False) is Verdict.NEXT
    assert levels.maybe[NORMAL] is False

    levels.mark(NORMAL)
    gen, rung = levels.begin_pull(NORMAL)
    levels.mark(NORMAL)  # a bell during the pull: its "empty" may be stale
    assert levels.after_pull(NORMAL, [], None, batch=1, gen=gen, rung=rung, retried=False) is Verdict.NEXT
    assert levels.maybe[NORMAL] is True


def test_a_full_batch_or_a_bell_retry_keeps_the_level_flagged() -> None:
    levels = Levels()
    gen, _ = levels.begin_pull(LOW)
    got = [mail(LOW, 1), mail(LOW, 2)]
    assert levels.after_pull(LOW, got, None, batch=2, gen=gen, rung=False, retried=False) is Verdict.SERVED
    assert levels.maybe[LOW] is True  # as many as asked for: there may be more
    gen, _ = levels.begin_pull(URGENT)
    assert levels.after_pull(URGENT, [], None, batch=1, gen=gen, rung=True, retried=True) is Verdict.NEXT
    assert levels.maybe[URGENT] is True  # the bell's mail may still be on its way


def test_a_bell_on_an_empty_answer_asks_for_a_grace_pull() -> None:
    levels = Levels()
    levels.mark(URGENT, rung=True)
    _, rung = levels.begin_pull(URGENT)
    assert rung and not levels.rung[URGENT]  # taken by the pull
    assert Levels.wants_grace([], None, rung)
    assert not Levels.wants_grace([], None, False)
    assert not Levels.wants_grace([], NoAnswer.UNANSWERED, rung)
    assert not Levels.wants_grace([mail(URGENT, 1)], None, rung)


def test_a_silent_level_is_waited_for_and_keeps_its_bell() -> None:
    levels = Levels()
    levels.mark(URGENT, rung=True)
    gen, rung = levels.begin_pull(URGENT)
    late_low = mail(LOW, 3)  # a late reply of another level counts for nothing here
    verdict = levels.after_pull(
        URGENT, [late_low], NoAnswer.REFUSED, batch=1, gen=gen, rung=rung, retried=False
    )
    assert verdict is Verdict.SILENT
    assert levels.rung[URGENT] and levels.maybe[URGENT]
    assert drain(levels) == [(LOW, 3)]  # kept, not lost


def test_mail_of_its_own_counts_as_an_answer_even_if_the_pull_broke_off() -> None:
    levels = Levels()
    gen, _ = levels.begin_pull(NORMAL)
    got = [mail(NORMAL, 4)]
    assert levels.after_pull(
        NORMAL, got, NoAnswer.UNANSWERED, batch=5, gen=gen, rung=False, retried=False
    ) is (Verdict.SERVED)
    assert levels.maybe[NORMAL] is True  # it did not say it is done


def test_the_heartbeat_sweep_flags_every_level_once_per_heartbeat() -> None:
    levels = Levels()
    assert levels.sweep(now=100.0, heartbeat=30.0)
    for prio in p.PRIORITIES:
        levels.maybe[prio] = False
    assert not levels.sweep(now=129.0, heartbeat=30.0)
    assert not any(levels.maybe.values())
    assert levels.until_sweep(now=129.0, heartbeat=30.0) == pytest.approx(1.0)
    assert levels.sweep(now=130.0, heartbeat=30.0)
    assert all(levels.maybe.values())
    assert levels.until_sweep(now=200.0, heartbeat=30.0) == 0.0


# -- hand-out order -----------------------------------------------------------------------------


def test_buffer_hands_out_by_priority_then_stream_order() -> None:
    levels = Levels()
    for prio, seq in [(LOW, 1), (NORMAL, 9), (CRITICAL, 12), (NORMAL, 3), (URGENT, 5), (CRITICAL, 11)]:
        levels.push(mail(prio, seq))
    assert levels.best() == CRITICAL
    assert drain(levels) == [(CRITICAL, 11), (CRITICAL, 12), (URGENT, 5), (NORMAL, 3), (NORMAL, 9), (LOW, 1)]
    assert levels.best() is None


def test_mail_expired_while_buffered_is_never_handed_out() -> None:
    sent = datetime(2026, 1, 1, tzinfo=timezone.utc)
    stale = mail(URGENT, 1, headers={"Mailslot-Sent-At": sent.isoformat(), "Mailslot-TTL": "10"})
    fresh = mail(NORMAL, 2)
    levels = Levels()
    levels.push(stale)
    levels.push(fresh)
    now = (sent + timedelta(seconds=11)).timestamp()
    assert expired(stale, now=now) and not expired(stale, now=now - 2)
    assert drain(levels, now=now) == [(NORMAL, 2)]


def test_close_takes_every_buffered_message() -> None:
    levels = Levels()
    levels.push(mail(LOW, 1))
    levels.push(mail(URGENT, 2))
    assert sorted(m.seq for m in levels.take_buffered()) == [1, 2]
    assert levels.buffer == []


# -- strict priority through a failover ------------------------------------------------------------


def test_a_waited_for_level_holds_back_everything_below_it() -> None:
    levels, wait = Levels(), FailoverWait()
    for prio, seq in [(NORMAL, 1), (LOW, 2), (CRITICAL, 3)]:
        levels.push(mail(prio, seq))
    wait.silent(URGENT, NoAnswer.UNANSWERED, now=0.0, consumer="c")
    assert drain(levels, held_back=wait.holds_back) == [(CRITICAL, 3)]  # above it: served
    assert drain(levels, held_back=wait.holds_back) == []  # normal and low wait for urgent
    wait.answered(NORMAL)  # another level answering changes nothing
    assert wait.blocked is URGENT
    wait.answered(URGENT)
    assert drain(levels, held_back=wait.holds_back) == [(NORMAL, 1), (LOW, 2)]


def test_the_failover_bound_raises_unavailable_with_its_cause() -> None:
    wait = FailoverWait(timeout=3)
    wait.silent(URGENT, NoAnswer.REFUSED, now=10.0, consumer="mail-x-1")
    for now in (10.5, 11.0, 12.9):  # re-polled: the clock keeps running from the first silence
        wait.check(now=now, address="x")
        wait.silent(URGENT, NoAnswer.REFUSED, now=now, consumer="mail-x-1")
    with pytest.raises(
        mailslot.Unavailable, match=r"priority urgent of mailbox x has not answered for 3\.0 s"
    ) as e:
        wait.check(now=13.0, address="x")
    assert isinstance(e.value.__cause__, TimeoutError) and "mail-x-1 was refused" in str(e.value.__cause__)
    wait.check(now=13.1, address="x")  # the next receive waits a full bound again
    wait.silent(URGENT, NoAnswer.UNANSWERED, now=13.2, consumer="mail-x-1")
    wait.check(now=16.1, address="x")
    with pytest.raises(mailslot.Unavailable):
        wait.check(now=16.2, address="x")


def test_a_level_left_alone_a_while_gets_a_fresh_bound() -> None:
    wait = FailoverWait(timeout=DEFAULT_FAILOVER_TIMEOUT)
    wait.silent(NORMAL, NoAnswer.UNANSWERED, now=0.0, consumer="c")
    wait.silent(NORMAL, NoAnswer.UNANSWERED, now=STALE_AFTER, consumer="c")
    assert wait.since == 0.0
    wait.silent(NORMAL, NoAnswer.UNANSWERED, now=2 * STALE_AFTER + 0.1, consumer="c")
    assert wait.since == 2 * STALE_AFTER + 0.1
    wait.silent(LOW, NoAnswer.UNANSWERED, now=2 * STALE_AFTER + 0.2, consumer="c")  # another level
    assert wait.blocked is LOW and wait.since == 2 * STALE_AFTER + 0.2


def test_timeout_note_names_the_level_waited_for() -> None:
    wait = FailoverWait()
    assert wait.note(now=5.0) == ""
    wait.silent(CRITICAL, NoAnswer.UNANSWERED, now=1.0, consumer="c")
    assert wait.note(now=5.5) == " (priority critical has not answered for 4.5 s: a leader election?)"


def test_a_permanent_recreate_failure_raises_at_once_and_a_transient_one_is_the_cause() -> None:
    wait = FailoverWait(timeout=1)
    wait.recreate_error = mailslot.PermissionDenied("no add_consumer for you")
    with pytest.raises(mailslot.PermissionDenied):
        wait.check(now=0.0, address="x")
    wait.check(now=0.0, address="x")  # raised once
    cause = mailslot.Unavailable("the meta leader is moving")
    wait.recreate_error = cause
    wait.silent(LOW, NoAnswer.REFUSED, now=0.0, consumer="c")
    with pytest.raises(mailslot.Unavailable, match="re-creating it failed: Unavailable") as e:
        wait.check(now=1.0, address="x")
    assert e.value.__cause__ is cause


def test_consumers_are_recreated_at_most_every_few_seconds() -> None:
    wait = FailoverWait()
    assert wait.recreate_due(100.0)
    assert not wait.recreate_due(100.0 + RECREATE_EVERY - 0.01)
    assert wait.recreate_due(100.0 + RECREATE_EVERY)


def test_a_silent_level_is_asked_again_from_50_ms_doubling_to_half_a_second() -> None:
    assert [retry_delay(n) for n in range(7)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


@pytest.mark.parametrize(
    ("status", "description", "answer"),
    [
        ("503", "", NoAnswer.REFUSED),
        ("409", "Leadership Change", NoAnswer.REFUSED),
        ("409", "Consumer Deleted", NoAnswer.REFUSED),
        ("409", "Exceeded MaxWaiting", None),
        ("404", "No Messages", None),
        ("408", "Request Timeout", None),
    ],
)
def test_which_status_replies_answer_for_their_level(
    status: str, description: str, answer: NoAnswer | None
) -> None:
    assert refusal(status, description) is answer


@pytest.mark.parametrize("bad", [-1, -0.1, math.nan, True, "30", None])
def test_failover_timeout_must_be_seconds(bad: object) -> None:
    with pytest.raises(mailslot.InvalidInput):
        failover_seconds(bad)
    wait = FailoverWait()
    with pytest.raises(mailslot.InvalidInput):
        wait.timeout = cast(float, bad)
    assert wait.timeout == DEFAULT_FAILOVER_TIMEOUT


def test_failover_timeout_accepts_zero_and_forever() -> None:
    wait = FailoverWait()
    wait.timeout = 0
    assert wait.timeout == 0.0
    wait.timeout = math.inf
    wait.silent(URGENT, NoAnswer.UNANSWERED, now=0.0, consumer="c")
    wait.check(now=1e9, address="x")


# -- lazy levels (issue 16) ---------------------------------------------------------------------


def test_a_receive_loop_starts_with_no_level_to_pull_and_sweeps_only_bound_levels() -> None:
    levels = Levels(unknown=False)
    assert levels.next_level() is None  # no consumer yet: nothing to pull until a bind or bell
    levels.mark(NORMAL, rung=True)  # a bell
    assert levels.next_level() is NORMAL
    levels.maybe[NORMAL] = False
    assert levels.sweep(now=100.0, heartbeat=30.0, levels={URGENT, LOW})
    assert [prio for prio in p.PRIORITIES if levels.maybe[prio]] == [URGENT, LOW]
