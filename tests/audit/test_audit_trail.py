"""The audit answers "who wrote to whom" and "what happened to message X" exactly: 1,000
messages between 10 agents, acked, termed (dead letter with a reason) or exhausted (dead letter
by the sidecar after its deliveries ran out)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta

import mailslot
from mailslot_broker import NatsServer
from mailslot_broker.sidecar import Sidecar, SidecarConfig
from testsupport import wait_for

AGENTS = [f"agent{i}.team" for i in range(10)]
N = 1000


@dataclass
class Sent:
    id: str
    sender: str
    to: str
    priority: mailslot.Priority
    size: int
    thread: str | None
    correlation: str | None
    fate: str  # ack | term | exhaust


async def _receive_all(box: mailslot.Mailbox, fates: dict[str, str]) -> None:
    """Settle every message for this mailbox as its fate says; an exhausted one is naked on
    each of its two deliveries."""
    settled: set[str] = set()
    naks: Counter[str] = Counter()
    while len(settled) < len(fates):
        msg = await box.receive(timeout=20)
        fate = fates[msg.id]
        if fate == "ack":
            await msg.ack()
            settled.add(msg.id)
        elif fate == "term":
            await msg.term(reason=f"refused {msg.id[:6]}")
            settled.add(msg.id)
        else:
            await msg.nak()
            naks[msg.id] += 1
            if naks[msg.id] == 2:
                settled.add(msg.id)


async def test_who_wrote_to_whom_and_what_happened(server: NatsServer, ms: mailslot.Mailslot) -> None:
    await ms.audit.enable()
    c = server.credentials
    sidecar = Sidecar(SidecarConfig(url=server.url, user=c.user, password=c.password, leader_ttl=1.5))
    await sidecar.start()
    rnd = random.Random(22)
    boxes = {a: await ms.open(a, max_deliver=2, ack_wait=5) for a in AGENTS}
    try:
        sent: list[Sent] = []

        async def one(i: int) -> None:
            frm, to = rnd.sample(AGENTS, 2)
            prio = mailslot.Priority(rnd.randrange(4))
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
            thread = f"t{i % 37}" if i % 3 else None
            corr = f"c{i}" if i % 5 == 0 else None
            fate = rnd.choices(["ack", "term", "exhaust"], [85, 10, 5])[0]
            r = await ms.send(to, body, sender=frm, priority=prio, thread_id=thread, correlation_id=corr)
            sent.append(Sent(r.id, frm, to, prio, len(body), thread, corr, fate))

        for start in range(0, N, 100):
            await asyncio.gather(*(one(i) for i in range(start, start + 100)))
        fates: dict[str, dict[str, str]] = defaultdict(dict)
        for s in sent:
            fates[s.to][s.id] = s.fate
        await asyncio.gather(*(_receive_all(boxes[a], fates[a]) for a in AGENTS if fates[a]))
        dead = sum(s.fate != "ack" for s in sent)

        async def all_dead() -> bool:
            return await ms.dead_letters.count() >= dead

        await wait_for(all_dead, timeout=30)
    finally:
        for b in boxes.values():
            await b.close()
        await sidecar.stop()

    records = await ms.audit.query()
    by_id: dict[str, list[mailslot.AuditRecord]] = defaultdict(list)
    for r in records:
        assert r.message_id is not None, r
        by_id[r.message_id].append(r)
    assert set(by_id) == {s.id for s in sent}

    # Who wrote to whom: every pair, exactly.
    truth_pairs = Counter((s.sender, s.to) for s in sent)
    audit_pairs = Counter((r.sender, r.recipient) for r in records if r.kind == "stored")
    assert audit_pairs == truth_pairs

    # What happened to each message, in order, with its metadata.
    for s in sent:
        rs = by_id[s.id]
        kinds = [r.kind for r in rs]
        stored = rs[0]
        assert stored.kind == "stored"
        assert (stored.sender, stored.recipient) == (s.sender, s.to)
        assert (stored.priority, stored.size) == (s.priority, s.size)
        assert (stored.thread_id, stored.correlation_id, stored.body) == (s.thread, s.correlation, None)
        assert all((r.recipient, r.sender, r.seq) == (s.to, s.sender, stored.seq) for r in rs)
        if s.fate == "ack":
            assert kinds == ["stored", "acked"], kinds
            assert rs[1].by == f"mailbox {s.to}" and rs[1].deliveries == 1
        elif s.fate == "term":
            assert kinds == ["stored", "dead", "termed"], kinds
            assert rs[1].reason == rs[2].reason == f"refused {s.id[:6]}"
            assert rs[2].by == f"mailbox {s.to}"
        else:
            assert kinds == ["stored", "nacked", "nacked", "exhausted", "dead"], kinds
            assert rs[3].by == "server" and rs[3].deliveries == 2
            assert rs[4].reason == "max deliveries" and rs[4].by == "mailslot"
        assert all(a.at <= b.at + timedelta(milliseconds=50) for a, b in itertools.pairwise(rs))

    # The filters give the same answers as the full read.
    a, b = AGENTS[0], AGENTS[1]
    pair = await ms.audit.query(sender=a, recipient=b, kinds=["stored"])
    assert sorted(r.message_id for r in pair) == sorted(s.id for s in sent if (s.sender, s.to) == (a, b))
    x = next(s for s in sent if s.fate == "term")
    assert [r.kind for r in await ms.audit.query(message_id=x.id)] == ["stored", "dead", "termed"]
    assert await ms.audit.query(since=timedelta(0)) == []
    inbound = await ms.audit.query(recipient=a)
    assert {r.message_id for r in inbound} == {s.id for s in sent if s.to == a}
