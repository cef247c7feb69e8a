"""A versioned key/value store for framework state: ``ms.state(namespace)``.

Checkpointers, flow persistence, agent state and task stores keep their records here instead
of running a database next to the broker. Every key has a revision; a write or delete may name
the revision it read (``expect_revision``, 0 = only if absent), and then lands only if nobody
wrote the key since, so two writers racing on a key cannot both win. Keys are tuples of
segments and are listed, purged and watched by prefix with a subject filter on the server, so
a prefix of hundreds of keys costs a request or two, not a get per key. The layout (bucket,
key encoding, limits) is the protocol's (``mailslot_broker.protocol.state``). On an agent
credential the store is an :class:`~mailslot._agent_state.AgentStateStore`: the same API on
the agent's own part of the bucket (why and how: :mod:`mailslot._agent_state`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import weakref
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from mailslot_broker import kvscan, natscompat
from mailslot_broker import protocol as p
from mailslot_broker.kvscan import KvItem
from mailslot_broker.provision import ProvisionReport, ensure_bucket
from mailslot_broker.tasks import cancel_and_wait
from nats.js import errors as jserr
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from ._boundary import boundary, checking, plain_seconds, translate
from ._events import Events
from ._kv_marker import write_marker
from ._ride_out import ride_out
from ._state_types import Key, StateChange, StateEntry, _entry, _key_check
from .errors import InvalidPayload, StateConflict, StateTooLarge
from .link import Link

T = TypeVar("T")

#: How long a deleted key keeps its purge marker (then nothing of it is left in the bucket).
DELETE_MARKER_TTL = 60.0
#: Deletes of one purge in flight at once.
_PURGE_CONCURRENCY = 64


class StateStore:
    """Versioned state under one namespace. Get it with ``ms.state(namespace)``."""

    #: The part of the bucket the namespace is in: None for a tenant's namespaces, an agent's
    #: scope (``protocol.state.agent_state_scope``) for an agent's.
    _scope: str | None = None

    def __init__(self, link: Link, namespace: str, *, watches: weakref.WeakSet[Any] | None = None) -> None:
        with _key_check():
            self.namespace = p.validate_namespace(namespace)
        self._link = link
        self._watches = watches
        self._kv: KeyValue | None = None

    def __repr__(self) -> str:
        return f"StateStore({self.namespace!r})"

    @property
    def max_value_size(self) -> int:
        """The largest value :meth:`put` takes (bytes), from the server's max payload."""
        return p.max_value_size(self._link.max_payload)

    # -- checks, before anything is sent ----------------------------------------------------

    def _kv_key(self, key: object) -> tuple[tuple[str, ...], str]:
        self._link.check_open()
        with _key_check():
            checked = p.validate_state_key(key)
            return checked, p.state_kv_key(self.namespace, checked, scope=self._scope)

    def _filters(self, prefix: object) -> list[str]:
        self._link.check_open()
        with _key_check():
            return p.state_filters(self.namespace, p.validate_state_prefix(prefix), scope=self._scope)

    def _value(self, value: object) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise InvalidPayload(f"a state value is bytes, not {type(value).__name__}")
        data = bytes(value)
        if len(data) > self.max_value_size:
            raise StateTooLarge(
                f"a state value is {len(data)} bytes; this server takes at most {self.max_value_size}"
            )
        return data

    @staticmethod
    def _revision(expect_revision: object) -> int | None:
        if expect_revision is None:
            return None
        with checking():
            return p.validate_count(expect_revision, what="expect_revision", minimum=0, maximum=2**63 - 1)

    @staticmethod
    def _ttl(ttl: float | timedelta | None) -> float | None:
        """Whole seconds, rounded up: the server's per-message TTL has no finer grain."""
        if ttl is None:
            return None
        with checking():
            return float(math.ceil(p.validate_ttl(ttl)))

    # -- the bucket -------------------------------------------------------------------------

    async def _bucket(self) -> KeyValue:
        """The state bucket, created on first use: connect() does not provision it, so an
        account that keeps no state spends no stream on it."""
        if self._kv is None:
            with boundary():
                # A lookup, or an idempotent create: both are asked again through an election.
                self._kv = await self._ride_out(self._find_or_create_bucket)
        return self._kv

    async def _find_or_create_bucket(self) -> KeyValue:
        js = self._link.js
        try:
            return await js.key_value(p.STATE_BUCKET)
        except jserr.BucketNotFoundError:
            s = self._link.options.settings or p.StreamSettings()
            config = p.state_bucket_config(s)
            await ensure_bucket(js, config, ProvisionReport(), requested_replicas=s.replicas)
            return await js.key_value(p.STATE_BUCKET)

    def _subject(self, kv_key: str) -> str:
        """Where a write of ``kv_key`` is published."""
        return p.kv_subject(p.STATE_BUCKET, kv_key)

    async def _ride_out(self, read: Callable[[], Awaitable[T]]) -> T:
        """A read, asked again through a leader election (:mod:`mailslot._ride_out`); writes
        are not repeated: a write whose answer was lost may have landed."""
        return await ride_out(read, patience=self._link.options.failover_timeout)

    async def _read(self, kv_key: str, *, deleted: bool = False) -> KvItem | None:
        await self._bucket()
        with boundary():
            found = await self._ride_out(
                lambda: kvscan.read_keys(self._link.js, p.STATE_BUCKET, [kv_key], deleted=deleted)
            )
        return found.get(kv_key)

    # -- the API ----------------------------------------------------------------------------

    async def get(self, key: Key) -> StateEntry | None:
        """The key's value and revision; None if it holds none."""
        checked, kv_key = self._kv_key(key)
        item = await self._read(kv_key)
        return _entry(checked, item) if item is not None else None

    async def put(
        self,
        key: Key,
        value: bytes,
        *,
        expect_revision: int | None = None,
        ttl: float | timedelta | None = None,
    ) -> int:
        """Write ``value``; returns its revision. With ``expect_revision`` only if that is
        still the key's revision (0: only if the key holds nothing), else
        :class:`StateConflict` and nothing written. ``ttl`` (seconds, rounded up) removes the
        key when it runs out, unless it is written again first."""
        checked, kv_key = self._kv_key(key)
        data = self._value(value)
        last = self._revision(expect_revision)
        seconds = self._ttl(ttl)
        kv = await self._bucket()
        if last is None:
            with boundary():
                ack = await self._link.js.publish(self._subject(kv_key), data, msg_ttl=seconds)
            return int(ack.seq)
        rev = await self._update(kv, kv_key, data, last, seconds)
        if rev is None and last == 0:
            # Absent may still mean a delete (or expiry) marker is the key's last message.
            item = await self._read(kv_key, deleted=True)
            if item is not None and not item.live:
                rev = await self._update(kv, kv_key, data, item.revision, seconds)
        if rev is not None:
            return rev
        raise StateConflict(
            f"state key {checked!r} is not at revision {last} any more"
            if last
            else f"state key {checked!r} exists already",
            key=checked,
            expected=last,
        )

    async def _update(
        self, kv: KeyValue, kv_key: str, data: bytes, last: int, ttl: float | None
    ) -> int | None:
        """The new revision, or None if ``last`` was not the key's revision."""
        with boundary():
            try:
                return await natscompat.kv_update(kv, kv_key, data, last=last, msg_ttl=ttl)
            except jserr.KeyWrongLastSequenceError:
                return None

    async def delete(self, key: Key, *, expect_revision: int | None = None) -> None:
        """Remove the key. Without ``expect_revision`` an absent key is fine; with it, the
        delete lands only if that is still the key's revision, else :class:`StateConflict`."""
        checked, kv_key = self._kv_key(key)
        last = self._revision(expect_revision)
        if last is None:
            if await self._read(kv_key) is None:
                return  # nothing to delete: leave no marker behind
        else:
            await self._bucket()
        if not await self._drop(kv_key, last):
            raise StateConflict(
                f"state key {checked!r} is not at revision {last}", key=checked, expected=last or 0
            )

    async def _drop(self, kv_key: str, last: int | None) -> bool:
        """Purge ``kv_key`` (only while at ``last``, if given); False if it was not."""
        headers = p.delete_headers(last, rollup=self._scope is None)
        return await write_marker(self._link, self._subject(kv_key), headers, ttl=DELETE_MARKER_TTL)

    async def _scan(self, prefix: Key) -> dict[str, StateEntry]:
        filters = self._filters(prefix)
        await self._bucket()
        out: dict[str, StateEntry] = {}
        with boundary():
            for pattern in filters:
                items = await self._ride_out(
                    functools.partial(kvscan.read_bucket, self._link.js, p.STATE_BUCKET, pattern)
                )
                for kv_key, item in items.items():
                    key = p.state_key_of(self.namespace, kv_key, scope=self._scope)
                    if key is not None:
                        out[kv_key] = _entry(key, item)
        return out

    async def items(self, prefix: Key = ()) -> list[StateEntry]:
        """Every key under ``prefix`` (the prefix's own key included; ``()`` = the whole
        namespace) with its value, sorted by key. One batched read per filter subject."""
        return sorted((await self._scan(prefix)).values(), key=lambda e: e.key)

    async def keys(self, prefix: Key = ()) -> list[tuple[str, ...]]:
        """The keys under ``prefix``, sorted."""
        return [e.key for e in await self.items(prefix)]

    async def purge(self, prefix: Key = ()) -> int:
        """Delete every key under ``prefix``; returns how many were deleted."""
        found = await self._scan(prefix)
        gate = asyncio.Semaphore(_PURGE_CONCURRENCY)

        async def drop(kv_key: str) -> None:
            async with gate:
                await self._drop(kv_key, None)

        await asyncio.gather(*(drop(k) for k in found))
        return len(found)

    def watch(self, prefix: Key = (), *, include_existing: bool = False) -> StateWatch:
        """Changes under ``prefix`` as the server pushes them (no polling): ``async with
        store.watch() as changes: async for ch in changes``. ``include_existing`` first reports
        every current value."""
        filters = self._filters(prefix)
        watch = StateWatch(self, filters, include_existing=include_existing)
        if self._watches is not None:
            self._watches.add(watch)
        return watch


class StateWatch:
    """Async iterator of :class:`StateChange` under one prefix; ``async with`` starts and
    closes it. Each change is reported once, in revision order per key."""

    def __init__(self, store: StateStore, filters: list[str], *, include_existing: bool) -> None:
        self._store = store
        self._filters = filters
        self.include_existing = include_existing
        self._watchers: list[KeyValue.KeyWatcher] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._seen: dict[str, int] = {}
        self._since = 0
        self._out: Events[StateChange] = Events()
        self._started = False
        self._closed = False

    async def start(self) -> StateWatch:
        if self._started:
            return self
        self._started = True
        self._store._link.check_open()
        try:
            await self._open()
        except BaseException:
            await self.close()
            raise
        return self

    async def _open(self) -> None:
        """Start watching (an agent credential's watch opens its own consumers instead)."""
        store = self._store
        kv = await store._bucket()
        js = store._link.js
        with boundary():
            # What the stream held before the watch: nats-py's watch first delivers every
            # key's last value, and which of those are old is told by revision, not by its
            # "initial values done" marker (which can come before them under load).
            info = await js.stream_info(p.kv_stream(p.STATE_BUCKET))
            self._since = int(info.state.last_seq)
            for pattern in self._filters:
                watcher = await kvscan.watch(js, kv, pattern)
                self._watchers.append(watcher)
                self._tasks.append(asyncio.create_task(self._pump(watcher), name="mailslot:state-watch"))

    def __await__(self) -> Any:
        return self.start().__await__()

    async def _pump(self, watcher: KeyValue.KeyWatcher) -> None:
        ns = self._store.namespace
        try:
            async for entry in watcher:
                if entry is None:
                    continue
                revision = int(entry.revision or 0)
                key = p.state_key_of(ns, entry.key)
                if key is None or self._seen.get(entry.key, 0) >= revision:
                    continue
                self._seen[entry.key] = revision
                deleted = entry.operation in (KV_DEL, KV_PURGE)
                if revision <= self._since and (deleted or not self.include_existing):
                    continue
                self._out.put(StateChange(key, None if deleted else (entry.value or b""), revision))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._out.put(translate(exc))

    async def next(self, *, timeout: float | timedelta | None = None) -> StateChange:
        """The next change; :class:`Timeout` after ``timeout`` s, StopAsyncIteration once closed."""
        t = plain_seconds(timeout, what="timeout")
        await self.start()
        return await self._out.next(t, nothing=lambda t: f"no state change within {t:g} s")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for watcher in self._watchers:
            with contextlib.suppress(Exception):
                await watcher.stop()
        await cancel_and_wait(self._tasks)
        self._out.close()
        for watcher in self._watchers:
            await kvscan.stop_watch(self._store._link.js, watcher)

    def __aiter__(self) -> StateWatch:
        return self

    async def __anext__(self) -> StateChange:
        return await self.next()

    async def __aenter__(self) -> StateWatch:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["DELETE_MARKER_TTL", "Key", "StateChange", "StateEntry", "StateStore", "StateWatch"]
