"""A LangGraph checkpointer on Mailslot's state store (JetStream KV), sync and async.

Graph state then lives where the mail lives: on the (replicated) NATS cluster, so a thread
paused in one process resumes in any other that reaches the broker, with no database and no
shared disk. Layout and record format: :mod:`mailslot_langgraph._layout`.

A ``put`` writes the changed channels' blobs first and the checkpoint record last, so a
crash in between leaves unreferenced blobs, never a checkpoint missing its values. Every part
is checked against the store's ``max_value_size`` before anything is written:
:class:`CheckpointTooLarge` if one is too big (no chunking; see the README's "Sizes").

The store is bound to the event loop of the client it came from. Async methods called on
another loop, and sync methods called from any thread but that loop's, hop to it; with a
``mailslot.sync`` client (its own background loop) the sync methods work in plain threads.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from typing import Any, TypeVar

import mailslot
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    SerializerProtocol,
    get_checkpoint_id,
    get_checkpoint_metadata,
)

from . import _layout as L
from ._bridge import LoopBridge
from ._interrupts import watch_interrupts
from .errors import CheckpointTooLarge

T = TypeVar("T")


def _loop_of(client: Any) -> tuple[mailslot.Mailslot, asyncio.AbstractEventLoop | None]:
    aio = getattr(client, "aio", None)
    if isinstance(aio, mailslot.Mailslot):  # a mailslot.sync client: its background loop
        from mailslot import sync

        return aio, sync.event_loop()
    if isinstance(client, mailslot.Mailslot):
        try:
            return client, asyncio.get_running_loop()
        except RuntimeError:
            return client, None
    raise TypeError(f"expected a mailslot client (async or mailslot.sync), got {type(client).__name__}")


def _ids(config: RunnableConfig) -> tuple[str, str]:
    c = config["configurable"]
    return str(c["thread_id"]), str(c.get("checkpoint_ns", ""))


def _config(thread: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}}


class MailslotCheckpointer(BaseCheckpointSaver[str]):
    """LangGraph ``BaseCheckpointSaver`` on ``client.state(namespace)``.

    ``client`` is a connected ``mailslot`` client (create the checkpointer on the loop that
    connected it) or a ``mailslot.sync`` one. Threads of one namespace are visible to every
    checkpointer on that namespace, in any process on the same broker.
    """

    def __init__(
        self, client: Any, *, namespace: str = "langgraph", serde: SerializerProtocol | None = None
    ) -> None:
        super().__init__(serde=serde)
        self.client, loop = _loop_of(client)
        self.namespace = namespace
        self.store = self.client.state(namespace)
        self._bridge = LoopBridge(loop)

    # -- running on the store's loop -------------------------------------------------------

    def _call(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return self._bridge.call(factory)

    async def _run(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        return await self._bridge.run(factory)

    # -- writing ----------------------------------------------------------------------------

    def _check(self, thread: str, ns: str, part: str, data: bytes) -> bytes:
        limit = self.store.max_value_size
        if len(data) > limit:
            raise CheckpointTooLarge(
                thread_id=thread, checkpoint_ns=ns, part=part, size=len(data), limit=limit
            )
        return data

    async def _put_checked(
        self, thread: str, ns: str, part: str, key: tuple[str, ...], data: bytes, **kw: Any
    ) -> int:
        try:
            return await self.store.put(key, data, **kw)
        except mailslot.StateTooLarge as exc:  # the store counts differently: same answer
            raise CheckpointTooLarge(
                thread_id=thread, checkpoint_ns=ns, part=part, size=len(data), limit=self.store.max_value_size
            ) from exc

    async def _aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        thread, ns = _ids(config)
        c = dict(checkpoint)
        values: dict[str, Any] = c.pop("channel_values")  # type: ignore[assignment]
        blobs = []
        for ch, ver in new_versions.items():
            typed = self.serde.dumps_typed(values[ch]) if ch in values else (L.EMPTY, b"")
            data = self._check(thread, ns, f"channel {ch!r}", L.dumps_blob(typed))
            blobs.append((f"channel {ch!r}", L.blob_key(thread, ns, ch, ver), data))
        record = L.CheckpointRecord(
            thread,
            ns,
            checkpoint["id"],
            self.serde.dumps_typed(c),
            self.serde.dumps_typed(get_checkpoint_metadata(config, metadata)),
            config["configurable"].get("checkpoint_id"),
        )
        data = self._check(thread, ns, "checkpoint", record.dumps())
        head, *_ = await asyncio.gather(  # the head is read meanwhile: one round trip less
            self.store.get(L.head_key(thread, ns)),
            *(self._put_checked(thread, ns, part, k, d) for part, k, d in blobs),
        )
        await self._put_checked(
            thread, ns, "checkpoint", L.checkpoint_key(thread, ns, checkpoint["id"]), data
        )
        await self._advance_head(thread, ns, checkpoint["id"], head)
        return _config(thread, ns, checkpoint["id"])

    async def _advance_head(self, thread: str, ns: str, checkpoint_id: str, entry: Any) -> None:
        """Point the head at ``checkpoint_id`` unless it already points at a newer one (two
        writers of one thread: the newest id wins, as ``max()`` over the ids would).
        ``entry`` is the head as read before (None: absent)."""
        key = L.head_key(thread, ns)
        while True:
            if entry is not None and entry.value.decode() >= checkpoint_id:
                return
            try:
                await self.store.put(
                    key, checkpoint_id.encode(), expect_revision=entry.revision if entry else 0
                )
                return
            except mailslot.StateConflict:
                entry = await self.store.get(key)  # another put moved it: look again

    async def _aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> None:
        thread, ns = _ids(config)
        cid = str(config["configurable"]["checkpoint_id"])
        todo = []
        for idx, (ch, value) in enumerate(writes):
            i = WRITES_IDX_MAP.get(ch, idx)
            rec = L.WriteRecord(task_id, i, ch, self.serde.dumps_typed(value), task_path)
            todo.append(
                (
                    i,
                    ch,
                    L.write_key(thread, ns, cid, task_id, i),
                    self._check(thread, ns, f"write {ch!r}", rec.dumps()),
                )
            )

        async def one(i: int, ch: str, key: tuple[str, ...], data: bytes) -> None:
            # As the other savers: a special write (error, interrupt, resume) replaces the
            # stored one; a regular write is stored once (a retried task does not overwrite).
            if i < 0:
                await self._put_checked(thread, ns, f"write {ch!r}", key, data)
                return
            with suppress(mailslot.StateConflict):
                await self._put_checked(thread, ns, f"write {ch!r}", key, data, expect_revision=0)

        await asyncio.gather(*(one(*t) for t in todo))

    # -- reading ----------------------------------------------------------------------------

    async def _record(self, thread: str, ns: str, checkpoint_id: str | None) -> L.CheckpointRecord | None:
        if checkpoint_id is None:
            head = await self.store.get(L.head_key(thread, ns))
            if head is not None:
                rec = await self._record(thread, ns, head.value.decode())
                if rec is not None:
                    return rec
            # No head (or one a concurrent delete left behind): the newest by scanning.
            keys = await self.store.keys(prefix=L.prefix(L.CHECKPOINT, thread, ns))
            if not keys:
                return None
            entry = await self.store.get(max(keys, key=lambda k: k[3]))
        else:
            entry = await self.store.get(L.checkpoint_key(thread, ns, checkpoint_id))
        return None if entry is None else L.CheckpointRecord.loads(entry.key, entry.value)

    async def _blob(self, key: tuple[str, ...]) -> tuple[str, bytes] | None:
        entry = await self.store.get(key)
        return None if entry is None else L.loads_blob(entry.value)

    async def _tuple(
        self, rec: L.CheckpointRecord, metadata: CheckpointMetadata | None = None
    ) -> CheckpointTuple:
        checkpoint: Checkpoint = self.serde.loads_typed(rec.checkpoint)
        versions = list(checkpoint["channel_versions"].items())
        blobs, writes = await asyncio.gather(
            asyncio.gather(*(self._blob(L.blob_key(rec.thread, rec.ns, ch, v)) for ch, v in versions)),
            self.store.items(prefix=L.prefix(L.WRITE, rec.thread, rec.ns, rec.checkpoint_id)),
        )
        values = {
            ch: self.serde.loads_typed(b)
            for (ch, _), b in zip(versions, blobs, strict=True)
            if b is not None and b[0] != L.EMPTY
        }
        recs = sorted((L.WriteRecord.loads(e.value) for e in writes), key=L.WriteRecord.sort_key)
        return CheckpointTuple(
            config=_config(rec.thread, rec.ns, rec.checkpoint_id),
            checkpoint={**checkpoint, "channel_values": values},
            metadata=metadata if metadata is not None else self.serde.loads_typed(rec.metadata),
            parent_config=_config(rec.thread, rec.ns, rec.parent_id) if rec.parent_id else None,
            pending_writes=[(w.task_id, w.channel, self.serde.loads_typed(w.value)) for w in recs],
        )

    async def _aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread, ns = _ids(config)
        rec = await self._record(thread, ns, get_checkpoint_id(config))
        return None if rec is None else await self._tuple(rec)

    async def _records(self, config: RunnableConfig | None) -> list[L.CheckpointRecord]:
        """Checkpoint records of one thread (and namespace, if the config names one) or of
        every thread, newest first."""
        if config is None:
            pre: tuple[str, ...] = (L.CHECKPOINT,)
        else:
            c = config["configurable"]
            ns = c.get("checkpoint_ns")
            parts = [str(c["thread_id"])] + ([] if ns is None else [str(ns)])
            pre = L.prefix(L.CHECKPOINT, *parts)
        entries = await self.store.items(prefix=pre)
        recs = [L.CheckpointRecord.loads(e.key, e.value) for e in entries]
        recs.sort(key=lambda r: r.checkpoint_id, reverse=True)
        return recs

    async def _alist(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> list[CheckpointTuple]:
        wanted = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        out: list[CheckpointTuple] = []
        for rec in await self._records(config):
            if limit is not None and len(out) >= limit:
                break
            if wanted and rec.checkpoint_id != wanted:
                continue
            if before_id and rec.checkpoint_id >= before_id:
                continue
            metadata = self.serde.loads_typed(rec.metadata)
            if filter and not all(metadata.get(k) == v for k, v in filter.items()):
                continue
            out.append(await self._tuple(rec, metadata))
        return out

    # -- deleting, copying, pruning ---------------------------------------------------------

    async def _adelete_thread(self, thread_id: str) -> None:
        for kind in (L.HEAD, L.CHECKPOINT, L.WRITE, L.BLOB):
            await self.store.purge(prefix=L.prefix(kind, str(thread_id)))

    async def _drop_checkpoints(self, recs: Sequence[L.CheckpointRecord]) -> None:
        """Delete these checkpoints and their writes, then, per (thread, namespace), the
        blobs no remaining checkpoint refers to, and point the head at the newest left."""
        for r in recs:
            await self.store.delete(L.checkpoint_key(r.thread, r.ns, r.checkpoint_id))
            await self.store.purge(prefix=L.prefix(L.WRITE, r.thread, r.ns, r.checkpoint_id))
        for thread, ns in {(r.thread, r.ns) for r in recs}:
            await self._tidy(thread, ns)

    async def _tidy(self, thread: str, ns: str) -> None:
        kept: set[tuple[str, ...]] = set()
        left = [
            L.CheckpointRecord.loads(e.key, e.value)
            for e in await self.store.items(prefix=L.prefix(L.CHECKPOINT, thread, ns))
        ]
        for rec in left:
            cp = self.serde.loads_typed(rec.checkpoint)
            kept.update(L.blob_key(thread, ns, ch, v) for ch, v in cp["channel_versions"].items())
        for key in await self.store.keys(prefix=L.prefix(L.BLOB, thread, ns)):
            if key not in kept:
                await self.store.delete(key)
        if left:
            await self.store.put(L.head_key(thread, ns), max(r.checkpoint_id for r in left).encode())
        else:
            await self.store.delete(L.head_key(thread, ns))

    async def _adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        runs = set(run_ids)
        if not runs:
            return
        doomed = [
            r for r in await self._records(None) if self.serde.loads_typed(r.metadata).get("run_id") in runs
        ]
        await self._drop_checkpoints(doomed)

    async def _acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        src, dst = L.seg(source_thread_id), L.seg(target_thread_id)
        for kind in L.KINDS:  # checkpoints after their blobs and writes, as in put
            for e in await self.store.items(prefix=(kind, src)):
                await self.store.put((kind, dst, *e.key[2:]), e.value)

    async def _aprune(self, thread_ids: Sequence[str], strategy: str) -> None:
        if strategy == "delete":
            for t in thread_ids:
                await self._adelete_thread(t)
            return
        if strategy != "keep_latest":
            raise ValueError(f"unknown prune strategy {strategy!r} (keep_latest or delete)")
        for t in thread_ids:
            latest: dict[str, str] = {}
            recs = await self._records({"configurable": {"thread_id": t}})
            for r in recs:  # newest first
                latest.setdefault(r.ns, r.checkpoint_id)
            await self._drop_checkpoints([r for r in recs if latest[r.ns] != r.checkpoint_id])

    # -- watching ---------------------------------------------------------------------------

    def watch_interrupts(self) -> AbstractAsyncContextManager[AsyncIterator[str]]:
        """Thread ids as their interrupts are stored (a graph pausing), pushed by the store's
        watch, from now on (:func:`mailslot_langgraph._interrupts.watch_interrupts`): what
        lets a :class:`~mailslot_langgraph.Resumer` follow threads that pause after it
        started. Use on the store's loop."""
        return watch_interrupts(self.store)

    # -- the BaseCheckpointSaver API ---------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._call(lambda: self._aget_tuple(config))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await self._run(lambda: self._aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        yield from self._call(lambda: self._alist(config, filter, before, limit))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for tup in await self._run(lambda: self._alist(config, filter, before, limit)):
            yield tup

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._call(lambda: self._aput(config, checkpoint, metadata, new_versions))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await self._run(lambda: self._aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        self._call(lambda: self._aput_writes(config, writes, task_id, task_path))

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        await self._run(lambda: self._aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._call(lambda: self._adelete_thread(thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._run(lambda: self._adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._call(lambda: self._adelete_for_runs(run_ids))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await self._run(lambda: self._adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._call(lambda: self._acopy_thread(source_thread_id, target_thread_id))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._run(lambda: self._acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._call(lambda: self._aprune(thread_ids, strategy))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await self._run(lambda: self._aprune(thread_ids, strategy))

    def get_next_version(self, current: str | None, channel: None) -> str:
        """As the Postgres and in-memory savers: a zero-padded counter, then a random
        fraction (two writers of one version still get distinct blob keys)."""
        if current is None:
            n = 0
        elif isinstance(current, int):
            n = current
        else:
            n = int(current.split(".")[0])
        return f"{n + 1:032}.{random.random():016}"
