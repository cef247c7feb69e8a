"""Mail waits: presence apart from retention, nothing reclaimed without a trace.

Every test runs a real sidecar on a real nats-server and goes through the public API: an agent
that is offline (closed, or killed) keeps its mail for its retention period; only when that
runs out is the mailbox reclaimed, its unread mail moved to dead letters (reason ``mailbox
reclaimed``) and senders that asked told with one bounce notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import mailslot
import pytest
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from nats.js import errors as jserr
from testsupport import client_env, start_procs, wait_for

from .conftest import leader_of


async def _consumers(ms: mailslot.Mailslot, address: str) -> list[str]:
    out = []
    for prio in p.PRIORITIES:
        with contextlib.suppress(jserr.NotFoundError):
            out.append((await ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, prio))).name)
    return out


async def _record(ms: mailslot.Mailslot, address: str) -> p.MailboxRecord | None:
    kv = await ms.js.key_value(p.MAILBOXES_BUCKET)
    try:
        return p.MailboxRecord.decode((await kv.get(address)).value)
    except jserr.KeyNotFoundError:
        return None


async def _lease_gone(ms: mailslot.Mailslot, address: str) -> bool:
    kv = await ms.js.key_value(p.AGENTS_BUCKET)
    try:
        return not (await kv.get(address)).value
    except jserr.KeyNotFoundError:
        return True


@pytest.fixture
def spawn(server: NatsServer) -> Iterator:
    """Start ``python -m procs ...`` children on the test's server; kill -9 leftovers."""
    procs: list[subprocess.Popen[str]] = []

    def _spawn(*argv: str) -> subprocess.Popen[str]:
        proc = start_procs(*argv, env=client_env(server))
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)


async def _line(proc: subprocess.Popen[str]) -> dict:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
    assert line, proc.stderr.read() if proc.stderr else "child exited"
    return json.loads(line)


@pytest.fixture
async def sidecar(make_sidecar) -> AsyncIterator:
    yield await leader_of(await make_sidecar(sweep_interval=1.0))


# -- presence is not retention ----------------------------------------------------------------


async def test_closed_agent_keeps_its_mail_past_the_lease(ms, sidecar) -> None:
    mb = await ms.open("b1", ttl=2, card={"description": "lunch break"})
    await mb.close()
    sent = await ms.send("b1", "hi", ttl=3600)
    await wait_for(lambda: _lease_gone(ms, "b1"), timeout=10)
    # Offline: consumers released, the record says since when, the card says offline.
    await wait_for(lambda: "b1" in sidecar.reaper.went_offline, timeout=10)
    assert await _consumers(ms, "b1") == []
    record = await _record(ms, "b1")
    assert record is not None and record.offline_since is not None
    assert record.keep == p.DEFAULT_KEEP and record.card["status"] == "offline"
    await asyncio.sleep(4)  # several sweeps later: nothing was reclaimed
    assert sidecar.reclaims == []
    assert await ms.dead_letters.count() == 0
    # The registry: gone from the online list, listed as offline on request.
    assert "b1" not in [c.address for c in await ms.agents()]
    offline = {c.address: c for c in await ms.agents(include_offline=True)}
    assert offline["b1"].status == "offline" and offline["b1"].description == "lunch break"
    again = await ms.open("b1", ttl=5)
    assert [c.status for c in await ms.agents(include_offline=True) if c.address == "b1"] == ["online"]
    m = await again.receive(timeout=5)
    assert (m.id, m.text()) == (sent.id, "hi")
    await m.ack()
    # Back online: retention clock cleared.
    record = await _record(ms, "b1")
    assert record is not None and record.offline_since is None
    await again.close()


async def test_killed_agent_finds_its_mail_after_its_lease_lapsed(ms, sidecar, spawn) -> None:
    proc = spawn("online", "crashy", "2")
    assert await _line(proc) == {"online": "crashy"}
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    sent = await ms.send("crashy", "while you were out", priority="urgent")
    await wait_for(lambda: "crashy" in sidecar.reaper.went_offline, timeout=15)
    await asyncio.sleep(2)
    restarted = spawn("receive", "crashy", "1")
    out, err = await asyncio.to_thread(restarted.communicate, timeout=60)
    assert json.loads(out.strip().splitlines()[-1]) == ["while you were out"], err
    assert sidecar.reclaims == [] and await ms.dead_letters.count() == 0
    assert (await ms.inspect("crashy").stats()).total == 0
    assert sent.priority == p.Priority.URGENT


# -- retention runs out: dead letters and bounces ---------------------------------------------


async def test_retention_runs_out_mail_dead_lettered_and_sender_bounced(ms, sidecar) -> None:
    asker = await ms.open("asker", ttl=30)
    box = await ms.open("shortstay", ttl=1, keep=2)
    await box.close()
    told = await asker.send("shortstay", {"q": 1}, notify_undelivered=True, priority="urgent")
    quiet = await asker.send("shortstay", "no notice please")
    await ms.send("shortstay", "sent by nobody in particular")
    started = time.monotonic()
    await wait_for(lambda: any(e.address == "shortstay" for e in sidecar.reclaims), timeout=20)
    print(f"\nreclaimed {time.monotonic() - started:.1f} s after close (ttl 1 s + keep 2 s)")
    dead = await ms.dead_letters.list("shortstay")
    assert sorted(d.id for d in dead) == sorted([told.id, quiet.id, dead[-1].id])
    assert {d.reason for d in dead} == {p.REASON_RECLAIMED}
    assert (await ms.inspect("shortstay").stats()).total == 0
    assert await _record(ms, "shortstay") is None and await _consumers(ms, "shortstay") == []
    # Exactly one bounce, for the one message that asked, in the sender's own mailbox.
    notice = await asker.receive(timeout=10)
    bounce = notice.bounce
    assert bounce is not None
    assert (bounce.message_id, bounce.to, bounce.reason) == (told.id, "shortstay", p.REASON_RECLAIMED)
    assert notice.priority == p.Priority.URGENT and notice.sender == p.SYSTEM_SENDER
    assert bounce.dead_letter_seq == next(d.seq for d in dead if d.id == told.id)
    await notice.ack()
    await sidecar.reaper.sweep()  # a second pass over the same state changes nothing
    assert await asker.receive_batch(max=5, timeout=1.5) == []
    await asker.close()


async def test_notify_undelivered_needs_a_sender(server) -> None:
    c = server.credentials
    async with mailslot.connect(server.url, user=c.user, password=c.password) as anonymous:
        with pytest.raises(mailslot.InvalidInput, match="sender"):
            await anonymous.send("anyone", "x", notify_undelivered=True)
        assert (await anonymous.inspect("anyone").stats()).total == 0


async def test_identity_on_call_mailbox_is_reclaimed_with_its_lease(ms, sidecar) -> None:
    me = await ms.open(ttl=1)
    assert me.keep == 0
    await ms.send(me.address, "for a ghost")
    await me.close()
    await wait_for(lambda: any(e.address == me.address for e in sidecar.reclaims), timeout=15)
    dead = await ms.dead_letters.list(me.address)
    assert [(d.text(), d.reason) for d in dead] == [("for a ghost", p.REASON_RECLAIMED)]


async def test_destroy_dead_letters_unread_mail(ms) -> None:
    mb = await ms.open("doomed", ttl=30)
    await ms.send("doomed", "one")
    await ms.send("doomed", "two", priority="low")
    await mb.destroy()
    dead = await ms.dead_letters.list("doomed")
    assert sorted(d.text() for d in dead) == ["one", "two"]
    assert {d.reason for d in dead} == {p.REASON_RECLAIMED}


async def test_mail_to_an_address_never_opened_waits_then_is_dead_lettered(ms, make_sidecar) -> None:
    sent = await ms.send("nobody-home", "hello?")
    sc = await leader_of(await make_sidecar(sweep_interval=0.5, unclaimed_keep=3.0))
    await asyncio.sleep(1.5)
    assert await ms.dead_letters.count() == 0  # younger than the unclaimed retention
    assert [m.id for m in await ms.inspect("nobody-home").peek()] == [sent.id]

    async def dead() -> bool:
        return [d.id for d in await ms.dead_letters.list("nobody-home")] == [sent.id]

    await wait_for(dead, timeout=15)
    assert (await ms.inspect("nobody-home").stats()).total == 0
    assert sc.is_leader


# -- exhausted mail reaches dead letters whatever the receiver does ---------------------------

BOUND = 2.0 + p.DEAD_LETTER_SLACK  # ack_wait + slack


async def _dead_within(ms: mailslot.Mailslot, address: str, since: float) -> float:
    async def dead() -> bool:
        return await ms.dead_letters.count(address) == 1

    await wait_for(dead, timeout=30, interval=0.1)
    took = time.monotonic() - since
    d = (await ms.dead_letters.list(address))[0]
    assert d.reason == p.REASON_MAX_DELIVERIES
    assert (await ms.inspect(address).stats()).total == 0
    return took


async def _two_deliveries(mb: mailslot.Mailbox) -> float:
    m = await mb.receive(timeout=5)
    await m.nak()
    m = await mb.receive(timeout=5)
    assert m.delivery_count == 2
    return time.monotonic()


async def test_exhausted_while_receiving(ms, sidecar) -> None:
    mb = await ms.open("recv-on", ttl=30, ack_wait=2, max_deliver=2)
    await ms.send("recv-on", "poison")
    last = await _two_deliveries(mb)
    keep_receiving = asyncio.ensure_future(mb.receive_batch(max=5, timeout=BOUND + 5))
    took = await _dead_within(ms, "recv-on", last)
    assert await keep_receiving == []
    print(f"\nreceiving: dead letter {took:.1f} s after the last delivery (bound {BOUND:g} s)")
    assert took <= BOUND
    await mb.close()


async def test_exhausted_while_idle(ms, sidecar) -> None:
    mb = await ms.open("recv-idle", ttl=30, ack_wait=2, max_deliver=2)
    await ms.send("recv-idle", "poison")
    last = await _two_deliveries(mb)
    took = await _dead_within(ms, "recv-idle", last)  # no receive() at all meanwhile
    print(f"\nidle: dead letter {took:.1f} s after the last delivery (bound {BOUND:g} s)")
    assert took <= BOUND
    await mb.close()


async def test_exhausted_after_the_receiver_died(ms, sidecar, spawn) -> None:
    await ms.send("recv-dead", "poison")
    proc = spawn("exhaust", "recv-dead")
    assert await _line(proc) == {"held": "poison", "deliveries": 2}
    last = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    took = await _dead_within(ms, "recv-dead", last)
    print(f"\nkilled: dead letter {took:.1f} s after the last delivery (bound {BOUND:g} s)")
    assert took <= BOUND


async def test_probe_does_not_take_a_delivery_from_live_mail(ms, sidecar) -> None:
    """The exhausted-mail probe must not count as a delivery of mail that still has some."""
    mb = await ms.open("patient", ttl=30, ack_wait=1, max_deliver=3)
    await ms.send("patient", "take your time")
    m = await mb.receive(timeout=5)
    assert m.delivery_count == 1
    await asyncio.sleep(3 * p.EXHAUSTED_PROBE_INTERVAL + 1)  # several probes of an unacked message
    m = await mb.receive(timeout=5)
    assert m.delivery_count == 2 and m.text() == "take your time"
    await m.ack()
    assert await ms.dead_letters.count() == 0
    await mb.close()
