"""An agent credential's state store (``ms.state(ns)``, sdk/_agent_state.py): its own part of
the state bucket, written through the agent writes stream, with the store's semantics kept
(revisions, compare-and-set, deletes, TTLs, prefix listing and watching), and a tenant
credential reading it with ``ms.state(ns, agent=...)``."""

from __future__ import annotations

import asyncio

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.protocol import state as pstate
from mailslot_broker.provision import provision_agent_writes

from .conftest import until


async def test_put_get_list_delete_in_its_own_namespace(principals):
    alice = await principals.connect("alice")
    store = alice.state("notes")
    assert "agent='alice'" in repr(store)
    rev = await store.put(("a", "one"), b"1")
    await store.put(("a", "two.with/odd chars"), b"2")
    await store.put(("b",), b"3")
    got = await store.get(("a", "one"))
    assert got is not None and got.value == b"1" and got.revision == rev
    assert await store.keys() == [("a", "one"), ("a", "two.with/odd chars"), ("b",)]
    assert [(e.key, e.value) for e in await store.items(("a",))] == [
        (("a", "one"), b"1"),
        (("a", "two.with/odd chars"), b"2"),
    ]
    listed = {e.key: e.revision for e in await store.items()}
    assert listed[("a", "one")] == rev  # a listing reports the revisions get and put use
    await store.delete(("a", "one"))
    assert await store.get(("a", "one")) is None
    assert await store.keys(("a",)) == [("a", "two.with/odd chars")]
    assert await store.purge() == 2
    assert await store.keys() == []


async def test_compare_and_set_holds(principals):
    alice = await principals.connect("alice")
    other = await principals.connect("alice")  # a second process of the same agent
    mine, theirs = alice.state("cas"), other.state("cas")
    first = await mine.put("k", b"v1", expect_revision=0)
    with pytest.raises(mailslot.StateConflict):
        await theirs.put("k", b"again", expect_revision=0)
    second = await theirs.put("k", b"v2", expect_revision=first)
    with pytest.raises(mailslot.StateConflict):
        await mine.put("k", b"stale", expect_revision=first)
    with pytest.raises(mailslot.StateConflict):
        await mine.delete("k", expect_revision=first)
    entry = await mine.get("k")
    assert entry is not None and (entry.value, entry.revision) == (b"v2", second)
    await mine.delete("k", expect_revision=second)
    assert await theirs.get("k") is None
    # Created again over its delete marker, only if absent.
    again = await theirs.put("k", b"v3", expect_revision=0)
    assert (await mine.get("k")).revision == again  # type: ignore[union-attr]


async def test_watch_sees_puts_deletes_and_expiry(principals):
    alice = await principals.connect("alice")
    store = alice.state("w")
    before = await store.put(("x", "old"), b"old")
    async with store.watch(("x",), include_existing=True) as changes:
        first = await changes.next(timeout=5)
        assert (first.key, first.value, first.revision) == (("x", "old"), b"old", before)
        rev = await store.put(("x", "new"), b"new")
        change = await changes.next(timeout=5)
        assert (change.key, change.value, change.revision) == (("x", "new"), b"new", rev)
        await store.put(("y",), b"elsewhere")  # outside the prefix: not seen
        await store.delete(("x", "old"))
        gone = await changes.next(timeout=5)
        assert gone.key == ("x", "old") and gone.deleted
        await store.put(("x", "brief"), b"b", ttl=1)
        assert (await changes.next(timeout=5)).key == ("x", "brief")
        expired = await changes.next(timeout=10)
        assert expired.key == ("x", "brief") and expired.deleted

        # get reads the writes stream, whose copy expires by its own server timer, a moment
        # apart from the bucket's that the watch reports (docs/protocol.md, An agent's state).
        async def gone_too() -> bool:
            return await store.get(("x", "brief")) is None

        await until(gone_too, within=5)
        assert await store.put(("x", "brief"), b"back", expect_revision=0)
    async with store.watch() as fresh:  # without include_existing: only what comes after
        await store.put(("z",), b"z")
        assert (await fresh.next(timeout=5)).key == ("z",)


async def test_tenant_reads_and_writes_an_agents_state_with_its_revisions(principals, tenant):
    alice = await principals.connect("alice")
    rev = await alice.state("shared").put("k", b"from alice")
    seen = tenant.state("shared", agent="alice")
    entry = await seen.get("k")
    assert entry is not None and (entry.value, entry.revision) == (b"from alice", rev)
    assert await seen.keys() == [("k",)]
    await seen.put("k", b"from ops", expect_revision=rev)
    assert (await alice.state("shared").get("k")).value == b"from ops"  # type: ignore[union-attr]
    # The tenant's own namespace of that name is another one.
    assert await tenant.state("shared").get("k") is None
    # And the copy in the bucket, under the agent's scope, is the agent's value.
    kv = await tenant.js.key_value(p.STATE_BUCKET)
    scope = pstate.agent_state_scope("alice")
    kv_key = pstate.state_kv_key("shared", ("k",), scope=scope)

    async def copied() -> bool:
        return (await kv.get(kv_key)).value == b"from ops"

    await until(copied, within=5)


async def test_a_tenant_namespace_is_unchanged(principals, tenant):
    """A tenant credential's ``ms.state(ns)`` writes the bucket directly, as before."""
    rev = await tenant.state("plain").put("k", b"v")
    kv = await tenant.js.key_value(p.STATE_BUCKET)
    assert (await kv.get(pstate.state_kv_key("plain", ("k",)))).revision == rev
    with pytest.raises(Exception):  # noqa: B017 - nothing went to the writes stream
        await tenant.js.get_last_msg(
            p.agent_writes.AGENT_WRITES_STREAM,
            p.agent_writes.agent_write_subject(p.STATE_BUCKET, pstate.state_kv_key("plain", ("k",))),
        )


async def test_state_sourcing_is_provisioned_idempotently(principals, tenant):
    """Issuing made the state bucket source the writes stream; again changes nothing; a
    bucket that lost it (a tenant whose agents predate agent state) gets it back at the next
    tenant connect."""
    report = await provision_agent_writes(tenant.js)
    assert not report.changed
    name = p.kv_stream(p.STATE_BUCKET)
    info = await tenant.js.stream_info(name)
    assert [s.name for s in info.config.sources or []] == [p.agent_writes.AGENT_WRITES_STREAM]
    import dataclasses

    await tenant.js.update_stream(dataclasses.replace(info.config, sources=[]))
    again = await principals.connect("tenant")
    assert again.provisioned is not None and name in again.provisioned.updated
    info = await tenant.js.stream_info(name)
    assert [s.name for s in info.config.sources or []] == [p.agent_writes.AGENT_WRITES_STREAM]
    await asyncio.sleep(0)


async def test_a_watch_whose_consumer_vanished_makes_it_again_and_misses_nothing(
    principals, tenant, monkeypatch
):
    """A watch consumer delivers without acks and goes when left without interest (an outage
    past its inactive threshold): the watch notices the silence (no idle heartbeat) and
    makes it again from the stream sequence after the last change it reported. Here the
    tenant deletes the consumers, and a change made while none exists still arrives, once."""
    from mailslot import _agent_state_watch

    monkeypatch.setattr(_agent_state_watch, "HEARTBEAT", 0.3)
    alice = await principals.connect("alice")
    store = alice.state("w2")
    async with store.watch() as changes:
        await store.put("before", b"1")
        assert (await changes.next(timeout=5)).key == ("before",)
        stream = p.kv_stream(p.STATE_BUCKET)
        names = await tenant.js.consumers_info(stream)
        assert names
        for info in names:
            await tenant.js.delete_consumer(stream, info.name)
        await store.put("meanwhile", b"2")
        change = await changes.next(timeout=10)
        assert (change.key, change.value) == (("meanwhile",), b"2")
        await store.put("after", b"3")
        assert (await changes.next(timeout=5)).key == ("after",)
        with pytest.raises(mailslot.Timeout):
            await changes.next(timeout=1)  # nothing twice


async def test_a_watch_that_cannot_make_its_consumer_again_raises_typed(principals, tenant, monkeypatch):
    """The watch's consumer is gone and the bucket's ``max_consumers`` is full, so it cannot
    be made again: no waiting cures that, so the iterator raises the server's refusal as the
    SDK's error (not Timeout after Timeout, nor a ``next()`` that hangs), then ends."""
    import dataclasses

    from mailslot import _agent_state_watch

    monkeypatch.setattr(_agent_state_watch, "HEARTBEAT", 0.3)
    alice = await principals.connect("alice")
    store = alice.state("w3")
    stream = p.kv_stream(p.STATE_BUCKET)
    async with store.watch() as changes:
        await store.put("a", b"1")
        assert (await changes.next(timeout=5)).key == ("a",)
        names = [c.name for c in await tenant.js.consumers_info(stream)]
        info = await tenant.js.stream_info(stream)
        await tenant.js.update_stream(dataclasses.replace(info.config, max_consumers=len(names)))
        for name in names:
            await tenant.js.delete_consumer(stream, name)
        for i in range(len(names)):  # the slots taken, by somebody else
            await tenant.js.add_consumer(stream, durable_name=f"fill{i}")
        with pytest.raises(mailslot.BrokerFailure, match="maximum consumers"):
            await asyncio.wait_for(changes.next(), 10)  # no timeout of its own: raises, not hangs
        with pytest.raises(StopAsyncIteration):
            await changes.next(timeout=1)


def test_a_watch_retries_transient_failures_up_to_failover_timeout():
    """Which failures to make a watch's consumer again are retried, and for how long: an
    unanswered or refused request (a leader election) up to ``failover_timeout``, then
    Unavailable; time disconnected does not count; a permanent refusal ends it at once."""
    import nats.errors as nerr
    from mailslot._agent_state_watch import Reopening, transient
    from nats.js import errors as jserr

    assert transient(nerr.TimeoutError()) and transient(nerr.NoRespondersError())
    assert transient(mailslot.Disconnected("down"))
    assert transient(jserr.ServiceUnavailableError(code=503, description="no leader"))
    assert not transient(
        jserr.APIError(code=400, err_code=10026, description="maximum consumers limit reached")
    )
    assert not transient(
        jserr.ServiceUnavailableError(
            code=503, err_code=10039, description="jetstream not enabled for account"
        )
    )
    assert not transient(mailslot.PermissionDenied("nope"))
    assert not transient(nerr.ConnectionClosedError())

    policy = Reopening(30.0)
    assert policy.failed(nerr.TimeoutError(), now=100.0, connected=True) is None
    assert policy.failed(nerr.NoRespondersError(), now=129.0, connected=True) is None
    err = policy.failed(nerr.TimeoutError(), now=130.0, connected=True)
    assert isinstance(err, mailslot.Unavailable) and "30.0 s" in str(err)
    assert isinstance(err.__cause__, nerr.TimeoutError)
    policy.succeeded()  # made again: the clock starts afresh
    assert policy.failed(nerr.TimeoutError(), now=200.0, connected=True) is None
    assert policy.failed(mailslot.Disconnected("down"), now=500.0, connected=False) is None
    assert policy.failed(nerr.TimeoutError(), now=501.0, connected=True) is None  # outage not counted
    denied = policy.failed(
        jserr.APIError(code=400, err_code=10026, description="maximum consumers limit reached"),
        now=501.5,
        connected=True,
    )
    assert isinstance(denied, mailslot.BrokerFailure)
    assert isinstance(
        policy.failed(nerr.ConnectionClosedError(), now=502.0, connected=False), mailslot.NotConnected
    )


async def _unsource(tenant) -> None:
    """The state bucket as a tenant's whose agents predate agent state: no source."""
    import dataclasses

    name = p.kv_stream(p.STATE_BUCKET)
    info = await tenant.js.stream_info(name)
    await tenant.js.update_stream(dataclasses.replace(info.config, sources=[]))


async def test_a_bucket_not_sourcing_the_writes_fails_listings_not_lists_stale(
    principals, tenant, monkeypatch
):
    """Without the bucket's source the agent's writes never reach it: keys, items, purge and
    a watch raise Unavailable naming the cause after the catch-up bound, instead of listing
    (and purging) what the bucket happens to hold. A tenant connect provisions it again."""
    import time

    from mailslot import _agent_state

    monkeypatch.setattr(_agent_state, "CATCH_UP", 1.0)
    alice = await principals.connect("alice")
    store = alice.state("unsourced")
    await store.put("old", b"1")
    assert await store.keys() == [("old",)]
    await _unsource(tenant)
    await store.put("new", b"2")  # in the writes stream, never in the bucket
    for call in (store.keys, store.items, store.purge):
        t0 = time.monotonic()
        with pytest.raises(mailslot.Unavailable, match="connect once with the tenant credential"):
            await call()
        assert time.monotonic() - t0 < 5
    with pytest.raises(mailslot.Unavailable, match="sourcing"):
        async with store.watch():
            pass
    assert (await store.get("new")).value == b"2"  # type: ignore[union-attr]  # reads the writes stream
    # The tenant credential reads the bucket's config: it fails at once, with the cause.
    monkeypatch.setattr(_agent_state, "CATCH_UP", 30.0)
    t0 = time.monotonic()
    with pytest.raises(mailslot.Unavailable, match="is not sourcing the agent writes stream"):
        await tenant.state("unsourced", agent="alice").keys()
    assert time.monotonic() - t0 < 5
    monkeypatch.setattr(_agent_state, "CATCH_UP", 1.0)
    await principals.connect("tenant")  # provisions the source again

    async def listed() -> bool:
        try:
            return await store.keys() == [("new",), ("old",)]
        except mailslot.Unavailable:
            return False

    await until(listed, within=10)
