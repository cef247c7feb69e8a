"""The state store's sync twin on a real server: the same calls, blocking, and a watch that is
a context manager yielding an iterator."""

from __future__ import annotations

import threading

import mailslot
import pytest
from mailslot import sync
from mailslot_broker import NatsServer
from testsupport import unique


def test_sync_store_round_trip(shared_server: NatsServer) -> None:
    c = shared_server.credentials
    with sync.connect(shared_server.url, user=c.user, password=c.password) as ms:
        store = ms.state(unique("sync"))
        assert isinstance(store, sync.SyncStateStore) and isinstance(store.aio, mailslot.StateStore)
        assert store.max_value_size == store.aio.max_value_size > 0
        rev = store.put(("t", "a"), b"1", expect_revision=0)
        with pytest.raises(mailslot.StateConflict):
            store.put(("t", "a"), b"x", expect_revision=0)
        assert store.put(("t", "a"), b"2", expect_revision=rev) > rev
        store.put(("t", "b"), b"3", ttl=30)
        store.put(("u",), b"4")
        got = store.get(("t", "a"))
        assert got is not None and got.value == b"2"
        assert [e.key for e in store.items(("t",))] == [("t", "a"), ("t", "b")]
        assert store.keys() == [("t", "a"), ("t", "b"), ("u",)]
        store.delete("u")
        assert store.purge(("t",)) == 2
        assert store.keys() == [] and store.get(("t", "a")) is None


def test_sync_watch_is_an_iterator_in_a_with_block(shared_server: NatsServer) -> None:
    c = shared_server.credentials
    with sync.connect(shared_server.url, user=c.user, password=c.password) as ms:
        store = ms.state(unique("sync-watch"))
        with store.watch(("t",)) as changes:

            def write() -> None:
                store.put(("t", "x"), b"v")
                store.delete(("t", "x"))

            writer = threading.Thread(target=write)
            writer.start()
            seen = []
            for ch in changes:
                seen.append((ch.key, ch.value))
                if len(seen) == 2:
                    break
            writer.join(5)
            assert seen == [(("t", "x"), b"v"), (("t", "x"), None)]
            with pytest.raises(mailslot.Timeout):
                changes.next(timeout=0.3)
        with pytest.raises(StopIteration):
            changes.next(timeout=1)
