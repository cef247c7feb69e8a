"""Isolation of agent state: bob's credential, through the SDK and through raw nats-py, cannot
read, write, list, watch, purge or roll up alice's state, nor the tenant's own namespaces; a
``Nats-Rollup`` header on an agent's own state write is refused; and one card by address
(``ms.agent``) is an agent's own only."""

from __future__ import annotations

import asyncio
import json
import time

import mailslot
import pytest
from mailslot.signing import matches  # NATS subject matching, as the server does it
from mailslot_broker import protocol as p
from mailslot_broker.protocol import principals
from mailslot_broker.protocol import state as pstate
from nats.js.errors import APIError

from .conftest import until

PROMPT = 3.0
ROLLUP_NOT_PERMITTED = 10111
AW = p.agent_writes
BUCKET_STREAM = p.kv_stream(p.STATE_BUCKET)


def _kv_key(address: str, ns: str, *key: str) -> str:
    return pstate.state_kv_key(ns, key, scope=pstate.agent_state_scope(address))


async def _alice_and_tenant_state(principals_):
    alice = await principals_.connect("alice")
    rev = await alice.state("notes").put("secret", b"alice's")
    tenant = await principals_.connect("tenant", name="ops")
    await tenant.state("notes").put("secret", b"the tenant's")
    return alice, tenant, rev


async def _intact(alice, tenant, rev) -> None:
    entry = await alice.state("notes").get("secret")
    assert entry is not None and (entry.value, entry.revision) == (b"alice's", rev)
    assert await alice.state("notes").keys() == [("secret",)]
    assert (await tenant.state("notes").get("secret")).value == b"the tenant's"  # type: ignore[union-attr]


async def _watch(store) -> None:
    async with store.watch():
        pass


SDK_CASES = {
    "get": lambda s: s.get("secret"),
    "put": lambda s: s.put("secret", b"bob was here"),
    "cas-put": lambda s: s.put("secret", b"bob", expect_revision=0),
    "delete": lambda s: s.delete("secret", expect_revision=1),
    "keys": lambda s: s.keys(),
    "items": lambda s: s.items(("secret",)),
    "purge": lambda s: s.purge(),
    "watch": _watch,
}


@pytest.mark.parametrize("case", list(SDK_CASES))
async def test_sdk_with_bobs_credential_cannot_touch_alices_state(principals, case):
    alice, tenant, rev = await _alice_and_tenant_state(principals)
    bob = await principals.connect("bob")
    started = time.monotonic()
    with pytest.raises(mailslot.PermissionDenied):
        await SDK_CASES[case](bob.state("notes", agent="alice"))
    assert time.monotonic() - started < PROMPT
    await _intact(alice, tenant, rev)
    # Bob's own namespace of that name is his, and empty; his connection stays usable.
    assert await bob.state("notes").get("secret") is None
    await bob.state("notes").put("mine", b"bob's")
    assert await bob.state("notes").keys() == [("mine",)]


def _raw_cases(bob_js, bob_nc):
    """(subject the server must refuse, action) pairs of a raw client with bob's login."""
    alice_written = AW.agent_write_subject(p.STATE_BUCKET, _kv_key("alice", "notes", "secret"))
    alice_copy = p.kv_subject(p.STATE_BUCKET, _kv_key("alice", "notes", "secret"))
    tenant_copy = p.kv_subject(p.STATE_BUCKET, pstate.state_kv_key("notes", ("secret",)))
    alice_filter = p.kv_subject(p.STATE_BUCKET, f"{pstate.agent_state_scope('alice')}.>")

    def consumer(filt: str, subject_filter: str | None) -> tuple[str, bytes]:
        body = {
            "stream_name": BUCKET_STREAM,
            "config": {
                "name": "sneak",
                "filter_subject": filt,
                "deliver_subject": bob_nc.new_inbox(),
                "deliver_policy": "last_per_subject",
                "ack_policy": "none",
            },
        }
        subject = f"$JS.API.CONSUMER.CREATE.{BUCKET_STREAM}.sneak"
        if subject_filter is not None:
            subject += f".{subject_filter}"
        return subject, json.dumps(body).encode()

    def request(subject: str, body: bytes = b""):
        return subject, lambda: bob_nc.request(subject, body, timeout=1)

    return {
        "write-alice": (alice_written, lambda: bob_nc.publish(alice_written, b"x")),
        "write-alice-bucket": (alice_copy, lambda: bob_nc.publish(alice_copy, b"x")),
        "write-tenant-ns": (tenant_copy, lambda: bob_nc.publish(tenant_copy, b"x")),
        "read-alice": request(f"$JS.API.DIRECT.GET.{AW.AGENT_WRITES_STREAM}.{alice_written}"),
        "read-alice-bucket": request(f"$JS.API.DIRECT.GET.{BUCKET_STREAM}.{alice_copy}"),
        "read-tenant-ns": request(f"$JS.API.DIRECT.GET.{BUCKET_STREAM}.{tenant_copy}"),
        "multi-last": request(
            f"$JS.API.DIRECT.GET.{BUCKET_STREAM}", json.dumps({"multi_last": [">"]}).encode()
        ),
        "msg-get": request(
            f"$JS.API.STREAM.MSG.GET.{BUCKET_STREAM}", json.dumps({"last_by_subj": alice_copy}).encode()
        ),
        "stream-info": request(
            f"$JS.API.STREAM.INFO.{BUCKET_STREAM}", json.dumps({"subjects_filter": ">"}).encode()
        ),
        "list-alice": request(*consumer(alice_filter, alice_filter)),
        "list-everything": request(
            *consumer(p.kv_subject(p.STATE_BUCKET, ">"), p.kv_subject(p.STATE_BUCKET, ">"))
        ),
        "list-by-body": request(*consumer(alice_filter, None)),
        "consumer-of-writes": request(
            f"$JS.API.CONSUMER.CREATE.{AW.AGENT_WRITES_STREAM}.sneak.{alice_written}",
        ),
        "purge-bucket": request(f"$JS.API.STREAM.PURGE.{BUCKET_STREAM}", b"{}"),
        "purge-writes": request(f"$JS.API.STREAM.PURGE.{AW.AGENT_WRITES_STREAM}", b"{}"),
    }


RAW_CASES = [
    "write-alice",
    "write-alice-bucket",
    "write-tenant-ns",
    "read-alice",
    "read-alice-bucket",
    "read-tenant-ns",
    "multi-last",
    "msg-get",
    "stream-info",
    "list-alice",
    "list-everything",
    "list-by-body",
    "consumer-of-writes",
    "purge-bucket",
    "purge-writes",
]


@pytest.mark.parametrize("case", RAW_CASES)
async def test_raw_client_with_bobs_login_is_refused_alices_state(principals, case):
    alice, tenant, rev = await _alice_and_tenant_state(principals)
    raw = await principals.raw("bob")
    subject, action = _raw_cases(raw.nc.jetstream(), raw.nc)[case]
    got = await raw.denied(subject, action)
    assert got == []
    await _intact(alice, tenant, rev)


async def test_a_consumer_whose_body_filter_is_not_its_subjects_is_refused(principals):
    """The permission sees the filter in the CONSUMER.CREATE subject; the server refuses a
    body whose filter differs, so bob cannot name his scope and list alice's."""
    alice, tenant, rev = await _alice_and_tenant_state(principals)
    raw = await principals.raw("bob")
    own = p.kv_subject(p.STATE_BUCKET, f"{pstate.agent_state_scope('bob')}.>")
    theirs = p.kv_subject(p.STATE_BUCKET, f"{pstate.agent_state_scope('alice')}.>")
    inbox = raw.nc.new_inbox()
    delivered = []

    async def collect(msg) -> None:
        delivered.append(msg)

    await raw.nc.subscribe(inbox, cb=collect)
    body = {
        "stream_name": BUCKET_STREAM,
        "config": {"name": "sneak", "filter_subject": theirs, "deliver_subject": inbox, "ack_policy": "none"},
    }
    answer = await raw.nc.request(
        f"$JS.API.CONSUMER.CREATE.{BUCKET_STREAM}.sneak.{own}", json.dumps(body).encode(), timeout=3
    )
    assert "error" in json.loads(answer.data)
    assert delivered == []
    await _intact(alice, tenant, rev)


async def test_a_rollup_header_on_an_agents_state_write_is_refused(principals):
    alice, tenant, rev = await _alice_and_tenant_state(principals)
    bob = await principals.connect("bob")
    await bob.state("notes").put("k", b"v")
    raw = await principals.raw("bob")
    js = raw.nc.jetstream()
    own = AW.agent_write_subject(p.STATE_BUCKET, _kv_key("bob", "notes", "k"))
    for rollup in ("sub", "all"):
        with pytest.raises(APIError) as refused:
            await js.publish(own, b"{}", headers={"Nats-Rollup": rollup}, timeout=5)
        assert refused.value.err_code == ROLLUP_NOT_PERMITTED
    await _intact(alice, tenant, rev)
    assert (await bob.state("notes").get("k")).value == b"v"  # type: ignore[union-attr]


@pytest.mark.parametrize(("mine", "other"), [("a", "a.b"), ("a.b", "a"), ("ab", "a"), ("a.b", "a.b.c")])
def test_no_agents_grants_reach_another_agents_or_a_namespaces_keys(mine, other):
    """Addresses of several tokens, and one a prefix of another: every state grant of one
    matches none of the other's state subjects, nor a tenant namespace's."""
    grants = principals.agent_state_grants(mine)
    theirs = _kv_key(other, "ns", "k")
    tenant = pstate.state_kv_key("ns", ("k",))
    for kv_key in (theirs, tenant):
        subjects = [
            AW.agent_write_subject(p.STATE_BUCKET, kv_key),
            p.kv_subject(p.STATE_BUCKET, kv_key),
            f"$JS.API.DIRECT.GET.{AW.AGENT_WRITES_STREAM}.{AW.agent_write_subject(p.STATE_BUCKET, kv_key)}",
            f"$JS.API.DIRECT.GET.{BUCKET_STREAM}.{p.kv_subject(p.STATE_BUCKET, kv_key)}",
            f"$JS.API.CONSUMER.CREATE.{BUCKET_STREAM}.x.{p.kv_subject(p.STATE_BUCKET, kv_key)}",
        ]
        assert not [(g, s) for g in grants for s in subjects if matches(g, s)]
    own = _kv_key(mine, "ns", "k")
    assert matches(grants[0], AW.agent_write_subject(p.STATE_BUCKET, own))


async def test_one_card_by_address_reads_as_the_registry_lists_it(principals):
    """An agent reads its own card directly (its own lease and record), another agent's as
    ``agents()`` lists it: through the sidecar (cards are public inside a tenant), and
    ``Unavailable`` without one, never by a read of the other's lease or record."""
    alice = await principals.connect("alice")
    mb = await alice.open("alice", ttl=30, card=mailslot.AgentCard(name="Alice"))
    bob = await principals.connect("bob")
    bob_mb = await bob.open("bob", ttl=30, card=mailslot.AgentCard(name="Bob"))
    tenant = await principals.connect("tenant", name="ops")
    try:
        assert bob.agent_address == "bob" and tenant.agent_address is None
        own = await bob.agent("bob")
        assert own is not None and own.name == "Bob" and own.address == "bob"

        async def listed() -> bool:  # the tenant reads the bucket: one sourcing hop later
            return await tenant.agent("alice") is not None

        await until(listed, within=5)
        seen = await tenant.agent("alice")
        assert seen is not None and seen.name == "Alice"
        assert await tenant.agent("nobody") is None
        await principals.stop_views()
        with pytest.raises(mailslot.Unavailable, match="sidecar"):
            await bob.agent("alice")  # no sidecar to list the registry
        assert await bob.agent("bob") == own  # its own card needs none
        await principals.start_views()
        listed_alice = await bob.agent("alice")
        assert listed_alice is not None and listed_alice.name == "Alice" and listed_alice.address == "alice"
        assert listed_alice == next(c for c in await bob.agents() if c.address == "alice")
        assert await bob.agent("nobody") is None
    finally:
        await mb.close()
        await bob_mb.close()

    # Offline: only with include_offline, marked so (the mailbox record's card).
    dave = await tenant.open("dave", ttl=1, card=mailslot.AgentCard(name="Dave"))
    await dave.close()

    async def offline() -> bool:
        return await tenant.agent("dave") is None

    await until(offline, within=10)
    kept = await tenant.agent("dave", include_offline=True)
    assert kept is not None and kept.name == "Dave" and kept.status == "offline"


async def test_a_state_consumer_delivering_elsewhere_delivers_nothing_there(principals, tenant):
    """A push consumer's deliver subject is its creator's choice, and the server does not
    check it against the creator's subscribe permissions. Pinned (nats-server 2.15): bob's
    consumer of his own state, delivering to alice's mailbox subject or to the JetStream API
    (his value a purge request's body), stores no mail and purges nothing: the server sends
    a push consumer's messages only while a client subscribes to its deliver subject."""
    await tenant.send("alice", "keep me")
    bob = await principals.connect("bob")
    await bob.state("notes").put("body", b"{}")
    raw = await principals.raw("bob")
    own = p.kv_subject(p.STATE_BUCKET, f"{pstate.agent_state_scope('bob')}.>")
    for i, target in enumerate(
        (p.mail_subject(p.Priority.NORMAL, "alice"), "$JS.API.STREAM.PURGE.MAILSLOT_MAIL")
    ):
        body = {
            "stream_name": BUCKET_STREAM,
            "config": {
                "name": f"elsewhere{i}",
                "filter_subject": own,
                "deliver_subject": target,
                "deliver_policy": "all",
                "ack_policy": "none",
            },
        }
        answer = await raw.nc.request(
            f"$JS.API.CONSUMER.CREATE.{BUCKET_STREAM}.elsewhere{i}.{own}",
            json.dumps(body).encode(),
            timeout=3,
        )
        assert "error" not in json.loads(answer.data)
    await asyncio.sleep(2)
    assert [m.text() for m in await tenant.inspect("alice").peek()] == ["keep me"]


async def test_known_gap_a_state_consumer_delivers_to_a_subscribed_subject(principals, tenant):
    """Known gap, pinned: where a client does subscribe to the deliver subject, the server
    delivers there, whatever the consumer creator may publish to. So carol, whose topics
    are ``carol.>``, can hand her own state values to subscribers of ``topic.elsewhere``. The
    message keeps its stored subject (``$KV.MAILSLOT_STATE.=agent.<carol>...``), not the
    topic's, so a Mailslot topic subscription does not take it for a broadcast; a raw
    subscriber that ignores the subject reads it. The same holds for the reply subject of a
    pull (docs/deploy.md, "Reply subjects are not permissions")."""
    got: list[tuple[str, bytes]] = []

    async def seen(msg) -> None:
        got.append((msg.subject, msg.data))

    await tenant.nc.subscribe("topic.elsewhere", cb=seen)
    await tenant.nc.flush()
    carol = await principals.connect("carol")
    await carol.state("notes").put("body", b"carol speaking")
    raw = await principals.raw("carol")
    own = p.kv_subject(p.STATE_BUCKET, f"{pstate.agent_state_scope('carol')}.>")
    body = {
        "stream_name": BUCKET_STREAM,
        "config": {
            "name": "elsewhere",
            "filter_subject": own,
            "deliver_subject": "topic.elsewhere",
            "deliver_policy": "all",
            "ack_policy": "none",
        },
    }
    create = f"$JS.API.CONSUMER.CREATE.{BUCKET_STREAM}.elsewhere.{own}"
    await raw.nc.request(create, json.dumps(body).encode(), timeout=3)

    async def arrived() -> bool:
        return bool(got)

    await until(arrived, within=5)
    assert got == [(p.kv_subject(p.STATE_BUCKET, _kv_key("carol", "notes", "body")), b"carol speaking")]
