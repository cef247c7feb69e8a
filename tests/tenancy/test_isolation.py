"""Tenant BETA can neither reach nor see tenant ALPHA's mail, agents, topics or streams.

Each tenant is a NATS account: whatever subject BETA uses (mail, bell, topic, ``$JS.API.>``,
``>``), it lands in BETA's own namespace. Every test ends by checking ALPHA's data untouched.
"""

from __future__ import annotations

import asyncio
import json

import mailslot
import pytest
from mailslot_broker import protocol as p
from testsupport import wait_for

from .conftest import connect_as


async def _alpha_world(alpha: mailslot.Mailslot) -> mailslot.Mailbox:
    """ALPHA: an open mailbox 'alice' with a card, and mail waiting for offline 'bob'."""
    alice = await alpha.open("alice", ttl=60, card={"description": "alpha's alice", "tags": ["secret"]})
    await alpha.send("bob", "for bob 1", priority="urgent")
    await alpha.send("bob", "for bob 2")
    return alice


async def _mail_count(ms: mailslot.Mailslot) -> int:
    return (await ms.js.stream_info(p.MAIL_STREAM)).state.messages


async def test_send_receive_peek_agents_are_per_tenant(tenants_server, tmp_path):
    alpha = await connect_as(tenants_server, "ALPHA", tmp_path, name="a")
    beta = await connect_as(tenants_server, "BETA", tmp_path, name="b")
    try:
        alice = await _alpha_world(alpha)
        before = await _mail_count(alpha)
        assert before == 2

        # BETA sends to the same address: it lands in BETA's mailbox, not ALPHA's.
        await beta.send("alice", "from beta")
        assert await _mail_count(alpha) == before
        # BETA peeks at ALPHA's offline mailbox: empty, in BETA's namespace.
        assert await beta.inspect("bob").peek() == []
        assert (await beta.inspect("bob").stats()).total == 0
        # BETA's registry holds none of ALPHA's agents.
        assert [c.address for c in await alpha.agents()] == ["alice"]
        assert await beta.agents() == []
        # BETA opens 'bob' (the address ALPHA has mail waiting for): nothing arrives.
        bob_b = await beta.open("bob", ttl=30)
        with pytest.raises(mailslot.Timeout):
            await bob_b.receive(timeout=1.0)
        await bob_b.destroy()
        # BETA's own 'alice' gets only BETA's message.
        alice_b = await beta.open("alice", ttl=30)
        m = await alice_b.receive(timeout=5)
        assert m.text() == "from beta"
        await m.ack()
        await alice_b.close()

        # ALPHA's data is untouched: bob's mail is all there, alice got nothing from BETA.
        with pytest.raises(mailslot.Timeout):
            await alice.receive(timeout=0.5)
        bob = await alpha.open("bob", ttl=30)
        got = [await bob.receive(timeout=5) for _ in range(2)]
        assert [g.text() for g in got] == ["for bob 1", "for bob 2"]
        for g in got:
            await g.ack()
    finally:
        await beta.close()
        await alpha.close()


async def test_wildcard_and_jetstream_api_subjects_stay_in_the_account(tenants_server, tmp_path):
    alpha = await connect_as(tenants_server, "ALPHA", tmp_path, name="a")
    beta = await connect_as(tenants_server, "BETA", tmp_path, name="b")
    seen: list[str] = []

    async def spy(msg):
        seen.append(msg.subject)

    try:
        # BETA listens on everything it may subscribe to, including ALPHA-looking subjects.
        subs = [await beta.nc.subscribe(s, cb=spy) for s in (">", "$JS.API.>", "$JS.ACK.>", "$KV.>")]
        topic_sub = await beta.subscribe(">")
        await beta.nc.flush()
        alice = await _alpha_world(alpha)
        await alpha.publish("build.done", {"ok": True})
        await alpha.publish("build.done", {"ok": True}, durable=True)
        m = await (await alpha.open("bob", ttl=30)).receive(timeout=5)
        await m.ack()
        await asyncio.sleep(0.5)
        # The server sends stream-created advisories asynchronously: one for BETA's own
        # provisioning (just before the spies subscribed) may arrive after them. It is BETA's.
        own = {f"$JS.EVENT.ADVISORY.STREAM.CREATED.{name}" for name in beta.provisioned.created}
        seen[:] = [s for s in seen if s not in own]
        assert seen == [], f"BETA saw ALPHA traffic: {seen[:5]}"
        with pytest.raises(mailslot.Timeout):
            await topic_sub.next(timeout=0.5)
        # Control: the same spies do see BETA's own traffic.
        await beta.publish("own.topic", 1)
        assert (await topic_sub.next(timeout=5)).json() == 1
        await beta.nc.flush()
        await wait_for(lambda: "topic.own.topic" in seen, timeout=5, interval=0.02)
        assert "topic.own.topic" in seen
        for s in subs:
            await s.unsubscribe()
        await topic_sub.close()

        # The JetStream API answers BETA about BETA's account only.
        async def api(subject: str, body: dict | None = None) -> dict:
            r = await beta.nc.request(subject, json.dumps(body or {}).encode(), timeout=5)
            return json.loads(r.data)

        streams = await api("$JS.API.STREAM.LIST")
        names = {s["config"]["name"] for s in streams["streams"]}
        assert p.MAIL_STREAM in names
        mail_b = next(s for s in streams["streams"] if s["config"]["name"] == p.MAIL_STREAM)
        assert mail_b["state"]["messages"] == 0  # ALPHA's bob mail is not in BETA's view
        got = await api(f"$JS.API.STREAM.MSG.GET.{p.MAIL_STREAM}", {"last_by_subj": "mbox.1.bob"})
        assert got.get("error", {}).get("code") == 404
        consumers = await api(f"$JS.API.CONSUMER.LIST.{p.MAIL_STREAM}")
        assert consumers["total"] == 0  # ALPHA's alice/bob consumers are invisible
        # Destructive calls hit BETA's own streams only.
        await api(f"$JS.API.STREAM.PURGE.{p.MAIL_STREAM}")
        await api(f"$JS.API.STREAM.DELETE.{p.MAIL_STREAM}")
        await api(f"$JS.API.STREAM.DELETE.KV_{p.AGENTS_BUCKET}")

        assert await _mail_count(alpha) == 1  # bob's second message is still waiting
        assert [c.address for c in await alpha.agents()] == sorted(["alice", "bob"])
        assert (await alpha.js.stream_info(p.MAIL_STREAM)).state.consumer_count >= 1  # levels with mail
        await alice.close()
    finally:
        await beta.close()
        await alpha.close()


async def test_same_stream_names_quotas_are_per_account(tenants_server, tmp_path):
    """Both tenants provision the same stream names; each account owns its own copy."""
    alpha = await connect_as(tenants_server, "ALPHA", tmp_path)
    beta = await connect_as(tenants_server, "BETA", tmp_path)
    try:
        assert alpha.tenant == "ALPHA" and beta.tenant == "BETA"
        for i in range(5):
            await alpha.send("x", i)
        assert await _mail_count(alpha) == 5
        assert await _mail_count(beta) == 0
    finally:
        await alpha.close()
        await beta.close()
