"""Which threads just paused: a graph's interrupt, pushed by the state store's watch.

A thread is reported once its state shows the interrupt: LangGraph may store a step's writes
before (or while) it stores the step's checkpoint, so an interrupt written against a
checkpoint the head does not reach yet is held until the head key's own change says it does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mailslot
from langgraph.checkpoint.base import WRITES_IDX_MAP
from langgraph.checkpoint.serde.types import INTERRUPT

from . import _layout as L

_INTERRUPT_IDX = L.seg(WRITES_IDX_MAP[INTERRUPT])


@asynccontextmanager
async def watch_interrupts(store: mailslot.StateStore) -> AsyncIterator[AsyncIterator[str]]:
    """Thread ids as their interrupts are stored, from now on."""
    async with (
        store.watch(prefix=(L.WRITE,)) as writes,
        store.watch(prefix=(L.HEAD,)) as heads,
    ):
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        async def pump(kind: str, changes: AsyncIterator[Any]) -> None:
            try:
                async for ch in changes:
                    queue.put_nowait((kind, ch))
            except Exception as exc:  # the watch broke: the reader raises it
                queue.put_nowait(("error", exc))

        pumps = [asyncio.ensure_future(pump(L.WRITE, writes)), asyncio.ensure_future(pump(L.HEAD, heads))]
        try:
            yield _paused_threads(store, queue)
        finally:
            for t in pumps:
                t.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)


async def _paused_threads(
    store: mailslot.StateStore, queue: asyncio.Queue[tuple[str, Any]]
) -> AsyncIterator[str]:
    held: dict[tuple[str, str], str] = {}  # (thread, ns) -> interrupted checkpoint id
    while True:
        kind, ch = await queue.get()
        if kind == "error":
            raise ch
        if ch.value is None:
            continue
        thread, ns = L.unseg(ch.key[1]), L.unseg(ch.key[2])
        if kind == L.WRITE:
            if len(ch.key) != 6 or ch.key[5] != _INTERRUPT_IDX:
                continue
            cid = L.unseg(ch.key[3])
            head = await store.get(L.head_key(thread, ns))
            if head is not None and head.value.decode() >= cid:
                yield thread
            else:
                held[(thread, ns)] = max(cid, held.get((thread, ns), ""))
        elif (wanted := held.get((thread, ns))) is not None and ch.value.decode() >= wanted:
            del held[(thread, ns)]
            yield thread
