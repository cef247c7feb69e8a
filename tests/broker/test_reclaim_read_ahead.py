"""Reclaiming reads ahead while moves to dead letters are in flight (reclaim.dead_letter_subjects):
the copies keep the order the mail was stored in, every message is moved once, and a move
that fails mid-walk loses nothing: the moves already in flight finish, the failed one stays in
the mailbox, and the next reclaim moves it (after the younger ones, then)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mailslot_broker import protocol as p
from mailslot_broker import provision, reclaim, reclaim_mailbox
from nats.aio.client import Client


async def _fill(js: Any, address: str, n: int, prio: p.Priority) -> None:
    for i in range(n):
        await js.publish_async(
            p.mail_subject(prio, address),
            f"{prio.label}-{i}".encode(),
            headers={p.Header.MSG_ID: f"{address}-{i}"},
        )
    await js.publish_async_completed()


async def _dead_letters(js: Any, address: str, prio: p.Priority) -> list[tuple[int, bytes]]:
    out = []
    seq = 0
    while True:
        try:
            raw = await js.get_msg(p.DLQ_STREAM, seq=seq, subject=p.dlq_subject(prio, address), next=True)
        except Exception:
            return out
        out.append((int(raw.headers[p.Header.DEAD_SEQ]), raw.data))
        seq = raw.seq + 1


async def test_a_long_mailbox_is_moved_whole_and_in_order(nc: Client) -> None:
    js = nc.jetstream()
    await provision(js)
    await _fill(js, "ahead", 300, p.Priority.NORMAL)
    await _fill(js, "ahead", 40, p.Priority.URGENT)
    report = await reclaim_mailbox(js, "ahead")
    assert report.messages_dead_lettered == 340
    normal = await _dead_letters(js, "ahead", p.Priority.NORMAL)
    assert [data for _, data in normal] == [f"normal-{i}".encode() for i in range(300)]
    assert [seq for seq, _ in normal] == sorted(seq for seq, _ in normal)  # stored order kept
    assert len(await _dead_letters(js, "ahead", p.Priority.URGENT)) == 40
    assert (await js.stream_info(p.MAIL_STREAM, subjects_filter="mbox.*.ahead")).state.messages == 0


async def test_a_move_failing_mid_walk_loses_nothing(nc: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    js = nc.jetstream()
    await provision(js)
    await _fill(js, "faulty", 120, p.Priority.LOW)
    real = reclaim.move_to_dead_letters
    started: list[asyncio.Future[Any]] = []
    calls = 0

    async def failing_once(js_: Any, raw: Any, **kw: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 50:
            raise RuntimeError("the 50th move fails")
        started.append(asyncio.ensure_future(real(js_, raw, **kw)))
        return await started[-1]

    monkeypatch.setattr(reclaim, "move_to_dead_letters", failing_once)
    with pytest.raises(RuntimeError, match="50th"):
        await reclaim.dead_letter_subjects(js, [p.mail_subject(p.Priority.LOW, "faulty")])
    assert all(f.done() for f in started)  # none of the moves already started is left running
    moved = await _dead_letters(js, "faulty", p.Priority.LOW)
    left = (await js.stream_info(p.MAIL_STREAM, subjects_filter="mbox.*.faulty")).state.messages
    assert len(moved) + left == 120  # every message is in exactly one place
    assert 49 <= len(moved) < 120
    monkeypatch.setattr(reclaim, "move_to_dead_letters", real)
    await reclaim.dead_letter_subjects(js, [p.mail_subject(p.Priority.LOW, "faulty")])
    moved = await _dead_letters(js, "faulty", p.Priority.LOW)
    # Each once. The one whose move failed comes after the younger ones already in flight.
    assert sorted(data for _, data in moved) == sorted(f"low-{i}".encode() for i in range(120))
    assert len({seq for seq, _ in moved}) == 120
    assert (await js.stream_info(p.MAIL_STREAM, subjects_filter="mbox.*.faulty")).state.messages == 0
