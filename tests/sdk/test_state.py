"""The state store on a real server: revision-checked writes that exactly one racer wins,
prefix reads, purges and watches that stay inside their prefix and namespace, TTLs, the size
limit, and bad input refused before anything is written."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import mailslot
import pytest
from mailslot_broker import NatsServer, TenantSpec, kvscan
from mailslot_broker import protocol as p
from mailslot_broker.config import Permissions
from testsupport import unique


def store_of(ms: mailslot.Mailslot) -> mailslot.StateStore:
    return ms.state(unique("ns"))


async def test_put_get_delete_round_trip(shared_ms: mailslot.Mailslot) -> None:
    store = store_of(shared_ms)
    key = ("thread 1", "ckpt/ü.ñ", "a.b c")
    assert await store.get(key) is None
    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    rev = await store.put(key, b"\x00one")
    got = await store.get(key)
    assert got is not None and (got.key, got.value, got.revision) == (key, b"\x00one", rev)
    assert before < got.updated_at <= datetime.now(timezone.utc) + timedelta(seconds=5)
    rev2 = await store.put(key, b"two")
    assert rev2 > rev and (await store.get(key)).value == b"two"  # type: ignore[union-attr]
    # a str is a key of one segment
    await store.put("solo", b"s")
    assert (await store.get(("solo",))).key == ("solo",)  # type: ignore[union-attr]
    await store.delete(key)
    assert await store.get(key) is None
    await store.delete(key)  # absent: fine
    await store.delete(("never", "written"))
    assert await store.keys() == [("solo",)]


async def test_stale_revision_conflicts_and_writes_nothing(shared_ms: mailslot.Mailslot) -> None:
    store = store_of(shared_ms)
    first = await store.put("k", b"1")
    second = await store.put("k", b"2", expect_revision=first)
    with pytest.raises(mailslot.StateConflict) as err:
        await store.put("k", b"stale", expect_revision=first)
    assert (err.value.key, err.value.expected) == (("k",), first)
    with pytest.raises(mailslot.StateConflict):
        await store.put("k", b"wrong", expect_revision=second + 1000)
    with pytest.raises(mailslot.StateConflict):
        await store.delete("k", expect_revision=first)
    got = await store.get("k")
    assert got is not None and (got.value, got.revision) == (b"2", second)
    await store.delete("k", expect_revision=second)
    assert await store.get("k") is None
    with pytest.raises(mailslot.StateConflict):
        await store.delete("k", expect_revision=second)  # gone: not at that revision any more


async def test_create_only(shared_ms: mailslot.Mailslot) -> None:
    store = store_of(shared_ms)
    rev = await store.put(("a", "b"), b"new", expect_revision=0)
    with pytest.raises(mailslot.StateConflict) as err:
        await store.put(("a", "b"), b"again", expect_revision=0)
    assert (err.value.key, err.value.expected) == (("a", "b"), 0)
    assert (await store.get(("a", "b"))).value == b"new"  # type: ignore[union-attr]
    # deleted (a marker is its last message): absent, so it can be created again
    await store.delete(("a", "b"), expect_revision=rev)
    again = await store.put(("a", "b"), b"reborn", expect_revision=0)
    assert again > rev and (await store.get(("a", "b"))).value == b"reborn"  # type: ignore[union-attr]


async def test_two_clients_racing_on_one_key_exactly_one_wins(shared_server: NatsServer) -> None:
    ns = unique("race")
    c = shared_server.credentials
    async with (
        await mailslot.connect(shared_server.url, user=c.user, password=c.password) as a,
        await mailslot.connect(shared_server.url, user=c.user, password=c.password) as b,
    ):
        sa, sb = a.state(ns), b.state(ns)
        for round_ in range(20):
            key = ("k", str(round_))
            base = 0 if round_ % 2 else await sa.put(key, b"base")

            async def write(
                store: mailslot.StateStore, tag: bytes, key: tuple[str, ...] = key, base: int = base
            ) -> object:
                try:
                    return await store.put(key, tag, expect_revision=base)
                except mailslot.StateConflict as exc:
                    return exc

            results = await asyncio.gather(write(sa, b"a"), write(sb, b"b"))
            won = [r for r in results if isinstance(r, int)]
            lost = [r for r in results if isinstance(r, mailslot.StateConflict)]
            assert len(won) == 1 and len(lost) == 1, results
            got = await sa.get(key)
            assert got is not None and got.revision == won[0] and got.value in (b"a", b"b")


async def test_items_keys_purge_stay_inside_prefix_and_namespace(shared_ms: mailslot.Mailslot) -> None:
    store, other = store_of(shared_ms), store_of(shared_ms)
    many = [("t1", f"c{i:03}") for i in range(300)]
    for key in many:
        await store.put(key, key[1].encode())
    await store.put("t1", b"own")  # the prefix's own key is under it
    await store.put(("t1x", "c"), b"sibling")  # a sibling whose name starts the same
    await store.put(("t2", "c000"), b"sibling")
    await other.put(("t1", "c000"), b"other namespace")

    got = await store.items(("t1",))
    assert [e.key for e in got] == sorted([("t1",), *many])
    assert {e.key: e.value for e in got}[("t1", "c007")] == b"c007"
    assert await store.keys(("t1", "c007")) == [("t1", "c007")]
    assert len(await store.keys()) == 303
    assert await store.keys(("nothing",)) == []

    assert await store.purge(("t1",)) == 301
    assert await store.keys() == [("t1x", "c"), ("t2", "c000")]
    assert await other.keys() == [("t1", "c000")]
    assert await store.purge(("t1",)) == 0
    assert await store.purge() == 2
    assert await store.keys() == []
    assert await other.keys() == [("t1", "c000")]


async def test_watch_is_pushed_within_a_second(shared_ms: mailslot.Mailslot) -> None:
    store = store_of(shared_ms)
    await store.put(("t", "old"), b"before the watch")
    async with store.watch(("t",)) as changes:
        await store.put(("u", "x"), b"outside the prefix")
        started = time.monotonic()
        rev = await store.put(("t", "new"), b"v")
        ch = await changes.next(timeout=1)
        assert (ch.key, ch.value, ch.revision, ch.deleted) == (("t", "new"), b"v", rev, False)
        await store.delete(("t", "new"))
        ch = await changes.next(timeout=1)
        assert (ch.key, ch.value, ch.deleted) == (("t", "new"), None, True)
        await store.put("t", b"own key")
        ch = await changes.next(timeout=1)
        assert ch.key == ("t",)
        assert time.monotonic() - started < 3
        with pytest.raises(mailslot.Timeout):
            await changes.next(timeout=0.3)  # the old value and the other prefix: not reported
    with pytest.raises(StopAsyncIteration):
        await changes.next(timeout=1)


async def test_watch_include_existing_and_ends_with_the_client(shared_server: NatsServer) -> None:
    c = shared_server.credentials
    ns = unique("w")
    client = await mailslot.connect(shared_server.url, user=c.user, password=c.password)
    store = client.state(ns)
    await store.put("a", b"1")
    await store.put("b", b"2")
    await store.delete("b")
    watch = await store.watch(include_existing=True)
    first = [await watch.next(timeout=2)]
    assert [(x.key, x.value) for x in first] == [(("a",), b"1")]
    await store.put("c", b"3")
    assert (await watch.next(timeout=2)).key == ("c",)

    async def drain() -> list[mailslot.StateChange]:
        return [ch async for ch in watch]

    task = asyncio.create_task(drain())
    await client.close()
    assert await asyncio.wait_for(task, 5) == []


async def test_ttl_expires_and_a_watch_sees_it(shared_ms: mailslot.Mailslot) -> None:
    store = store_of(shared_ms)
    async with store.watch() as changes:
        await store.put("brief", b"x", ttl=1)
        await store.put("kept", b"y", ttl=timedelta(seconds=30))
        assert (await changes.next(timeout=2)).key == ("brief",)
        assert (await changes.next(timeout=2)).key == ("kept",)
        gone = await changes.next(timeout=5)
        assert (gone.key, gone.deleted) == (("brief",), True)
    assert await store.get("brief") is None
    assert await store.keys() == [("kept",)]


async def test_value_at_the_limit_is_taken_one_byte_more_is_refused(shared_ms: mailslot.Mailslot) -> None:
    store = store_of(shared_ms)
    limit = store.max_value_size
    assert limit == shared_ms.max_payload - p.STATE_HEADER_ALLOWANCE > 0
    await store.put(("big", "x" * 400), b"a" * limit, expect_revision=0, ttl=60)
    assert len((await store.get(("big", "x" * 400))).value) == limit  # type: ignore[union-attr]
    with pytest.raises(mailslot.StateTooLarge) as err:
        await store.put("over", b"a" * (limit + 1))
    assert isinstance(err.value, mailslot.InvalidPayload)
    assert await store.keys() == [("big", "x" * 400)]


@pytest.mark.parametrize("namespace", ["", "a.b", "a b", "a*", "x" * 65, "ü", 7, None])
async def test_bad_namespace(shared_ms: mailslot.Mailslot, namespace: object) -> None:
    with pytest.raises(mailslot.InvalidStateKey):
        shared_ms.state(namespace)  # type: ignore[arg-type]


BAD_KEYS: list[object] = [
    "",
    (),
    ("a", ""),
    ("a", 7),
    b"x",
    7,
    tuple("abcdefghi"),
    ("x" * (p.MAX_SEGMENT_BYTES + 1),),
    ("é" * (p.MAX_SEGMENT_BYTES // 2 + 1),),
    tuple("x" * p.MAX_SEGMENT_BYTES for _ in range(p.MAX_KEY_SEGMENTS)),  # too long encoded
]


@pytest.mark.parametrize("key", BAD_KEYS, ids=range(len(BAD_KEYS)))
async def test_bad_keys_write_nothing(shared_ms: mailslot.Mailslot, key: object) -> None:
    store = store_of(shared_ms)
    for call in (store.put, store.get, store.delete):
        with pytest.raises(mailslot.InvalidStateKey):
            await (call(key, b"v") if call == store.put else call(key))  # type: ignore[operator]
    assert await store.keys() == []


@pytest.mark.parametrize("prefix", [("a", ""), 7, tuple("abcdefghi"), b"x"])
async def test_bad_prefixes(shared_ms: mailslot.Mailslot, prefix: object) -> None:
    store = store_of(shared_ms)
    for call in (store.items, store.keys, store.purge):
        with pytest.raises(mailslot.InvalidStateKey):
            await call(prefix)  # type: ignore[arg-type]
    with pytest.raises(mailslot.InvalidStateKey):
        store.watch(prefix)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["text", None, 7, {"a": 1}, [b"x"]])
async def test_non_bytes_values_write_nothing(shared_ms: mailslot.Mailslot, value: object) -> None:
    store = store_of(shared_ms)
    with pytest.raises(mailslot.InvalidPayload):
        await store.put("k", value)  # type: ignore[arg-type]
    assert await store.keys() == []


@pytest.mark.parametrize("ttl", [0, -1, 0.5, math.inf, math.nan, "5", p.MAX_SECONDS + 1])
async def test_bad_ttl_writes_nothing(shared_ms: mailslot.Mailslot, ttl: object) -> None:
    store = store_of(shared_ms)
    with pytest.raises(mailslot.InvalidTTL):
        await store.put("k", b"v", ttl=ttl)  # type: ignore[arg-type]
    assert await store.keys() == []


@pytest.mark.parametrize("revision", [-1, 1.5, "3", True])
async def test_bad_expect_revision_writes_nothing(shared_ms: mailslot.Mailslot, revision: object) -> None:
    store = store_of(shared_ms)
    with pytest.raises(mailslot.InvalidInput):
        await store.put("k", b"v", expect_revision=revision)  # type: ignore[arg-type]
    assert await store.keys() == []


async def test_bucket_is_created_on_first_use(ms: mailslot.Mailslot) -> None:
    js = ms.nc.jetstream()
    names = [s.config.name for s in await js.streams_info()]
    assert p.kv_stream(p.STATE_BUCKET) not in names
    await ms.state("first").put("k", b"v")
    info = await js.stream_info(p.kv_stream(p.STATE_BUCKET))
    assert info.config.max_msgs_per_subject == 1 and info.config.allow_msg_ttl
    assert info.config.num_replicas == 1
    assert await ms.state("first").keys() == [("k",)]


async def test_a_tenant_without_rights_gets_permission_denied(tmp_path) -> None:
    perms = Permissions()
    perms.publish_deny += [p.kv_subject(p.STATE_BUCKET, ">")]
    spec = TenantSpec.generate("NOSTATE", permissions=perms)
    with NatsServer(tmp_path / "nats", tenants=[spec]) as srv:
        creds = spec.credentials.write(tmp_path / "nostate.json")
        async with await mailslot.connect(srv.url, credentials=creds) as ms:
            store = ms.state("denied")
            started = time.monotonic()
            with pytest.raises(mailslot.PermissionDenied):
                await store.put("k", b"v")
            with pytest.raises(mailslot.PermissionDenied):
                await store.put("k", b"v", expect_revision=0)
            assert time.monotonic() - started < 6
            assert await store.get("k") is None  # reading is allowed


async def test_closed_client_refuses(server: NatsServer) -> None:
    c = server.credentials
    client = await mailslot.connect(server.url, user=c.user, password=c.password)
    store = client.state("x")
    await client.close()
    with pytest.raises(mailslot.NotConnected):
        await store.put("k", b"v")


async def test_prefix_reads_are_batched_and_an_idle_watch_sends_nothing(ms: mailslot.Mailslot) -> None:
    """Hundreds of keys are read with a request per filter subject, not a get per key, and a
    watch is pushed by the server: while nothing changes it makes no request at all."""
    requests: list[str] = []

    async def spy(msg: Any) -> None:
        requests.append(msg.subject)

    sub = await ms.nc.subscribe("$JS.API.>", cb=spy)
    try:
        store = ms.state("batched")
        for i in range(300):
            await store.put(("t", f"k{i}"), b"v")
        await ms.nc.flush()
        requests.clear()
        assert len(await store.items(("t",))) == 300
        await ms.nc.flush()
        assert 1 <= len(requests) <= 2, requests
        async with store.watch(("t",)) as changes:
            await asyncio.sleep(0.5)
            await ms.nc.flush()
            requests.clear()
            await asyncio.sleep(2.5)
            await ms.nc.flush()
            assert requests == []
            await store.put(("t", "k7"), b"new")
            assert (await changes.next(timeout=1)).value == b"new"
    finally:
        await sub.unsubscribe()


async def test_more_keys_than_one_batched_read_returns(shared_ms: mailslot.Mailslot) -> None:
    """Past the server's 1024 subjects per batched read the prefix is read in chunks."""
    store = store_of(shared_ms)
    keys = [("big", f"{i:05}") for i in range(kvscan.MULTI_LAST_LIMIT + 100)]
    for start in range(0, len(keys), 100):
        await asyncio.gather(*(store.put(k, k[1].encode()) for k in keys[start : start + 100]))
    await store.put(("small", "x"), b"sibling")
    got = await store.items(("big",))
    assert [e.key for e in got] == keys and got[-1].value == keys[-1][1].encode()
    assert await store.purge(("big",)) == len(keys)
    assert await store.keys() == [("small", "x")]
