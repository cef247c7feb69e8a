"""MailslotCheckpointer beyond the conformance suite: what the SQLite saver's tests check
(metadata search, graphs run end to end, sync use from plain threads) and what only a
network store has (a checkpoint larger than a value may be, the loop a client is bound to)."""

from __future__ import annotations

import asyncio
import operator
import threading
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import mailslot
import mailslot.sync
import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from mailslot_broker import NatsServer
from mailslot_langgraph import CheckpointTooLarge, MailslotCheckpointer
from testsupport import unique


def _ns() -> str:
    return unique("lg").replace(".", "-")


class Count(TypedDict, total=False):
    n: Annotated[int, operator.add]
    blob: str
    note: str


def counting_graph(checkpointer: Any) -> Any:
    """START -> add -> ask (interrupt) -> END."""

    def add(state: Count) -> Count:
        return {"n": 1}

    def ask(state: Count) -> Count:
        return {"note": interrupt("note?")}

    g = StateGraph(Count)
    g.add_node("add", add)
    g.add_node("ask", ask)
    g.add_edge(START, "add")
    g.add_edge("add", "ask")
    g.add_edge("ask", END)
    return g.compile(checkpointer=checkpointer)


@pytest.fixture
def sync_ms(shared_server: NatsServer) -> Iterator[mailslot.sync.SyncMailslot]:
    c = shared_server.credentials
    client = mailslot.sync.connect(shared_server.url, user=c.user, password=c.password, name="tester")
    yield client
    client.close()


def _config(thread: str, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": "", **extra}}


async def test_search_by_metadata_newest_first(shared_ms: mailslot.Mailslot) -> None:
    """The SQLite saver's test_search: metadata filters, across threads and within one."""
    saver = MailslotCheckpointer(shared_ms, namespace=_ns())
    cps = []
    for thread, meta in (
        ("t-1", {"source": "input", "step": 2, "writes": {"foo": "bar"}, "score": 1}),
        ("t-2", {"source": "loop", "step": 1, "writes": {"foo": "bar"}, "score": None}),
        ("t-2", {"source": "input", "step": 2, "writes": {}}),
    ):
        cp = empty_checkpoint()
        cps.append(cp)
        await saver.aput(_config(thread), cp, meta, {})  # type: ignore[arg-type]

    async def search(config: Any = None, **kw: Any) -> list[str]:
        return [t.checkpoint["id"] async for t in saver.alist(config, **kw)]

    assert await search(filter={"source": "input"}) == [cps[2]["id"], cps[0]["id"]]
    assert await search(filter={"step": 1, "writes": {"foo": "bar"}}) == [cps[1]["id"]]
    # As the in-memory and SQLite savers: a key the metadata lacks matches None.
    assert await search(filter={"score": None}) == [cps[2]["id"], cps[1]["id"]]
    assert await search(filter={"source": "update"}) == []
    assert await search() == [cp["id"] for cp in reversed(cps)]  # every thread, newest first
    assert await search({"configurable": {"thread_id": "t-2"}}, limit=1) == [cps[2]["id"]]
    before = {"configurable": {"checkpoint_id": cps[2]["id"]}}
    assert await search({"configurable": {"thread_id": "t-2"}}, before=before) == [cps[1]["id"]]
    # The sync twin answers the same.
    got = await asyncio.to_thread(
        lambda: [t.checkpoint["id"] for t in saver.list(None, filter={"source": "input"})]
    )
    assert got == [cps[2]["id"], cps[0]["id"]]


async def test_graph_pauses_and_resumes_on_the_store(shared_ms: mailslot.Mailslot) -> None:
    ns = _ns()
    app = counting_graph(MailslotCheckpointer(shared_ms, namespace=ns))
    cfg = {"configurable": {"thread_id": "g/1 with spaces.and dots"}}
    out = await app.ainvoke({"n": 0}, cfg, version="v2")
    assert [i.value for i in out.interrupts] == ["note?"]
    # Another checkpointer on the same namespace (as another process would) sees the pause ...
    other = counting_graph(MailslotCheckpointer(shared_ms, namespace=ns))
    state = await other.aget_state(cfg)
    assert state.next == ("ask",) and state.values["n"] == 1 and state.interrupts
    # ... and resumes it.
    done = await other.ainvoke(Command(resume="hi"), cfg)
    assert done == {"n": 1, "note": "hi"}
    history = [s async for s in other.aget_state_history(cfg)]
    assert len(history) >= 4 and history[0].values == done
    await other.checkpointer.adelete_thread(cfg["configurable"]["thread_id"])
    assert (await app.aget_state(cfg)).values == {}


def test_sync_methods_from_a_thread_without_a_loop(sync_ms: mailslot.sync.SyncMailslot) -> None:
    """With a mailslot.sync client the sync methods work in plain threads (LangGraph's
    invoke()), on the sync client's background loop."""
    app = counting_graph(MailslotCheckpointer(sync_ms, namespace=_ns()))
    results: list[Any] = []

    def run(i: int) -> None:
        cfg = {"configurable": {"thread_id": f"s-{i}"}}
        app.invoke({"n": 10}, cfg)
        results.append(app.invoke(Command(resume=f"r{i}"), cfg))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r["note"] for r in results) == ["r0", "r1", "r2"]
    assert all(r["n"] == 11 for r in results)
    assert len(list(app.checkpointer.list({"configurable": {"thread_id": "s-1"}}))) >= 4


async def test_sync_methods_with_an_async_client(shared_ms: mailslot.Mailslot) -> None:
    """An async client's checkpointer: sync calls from worker threads hop to its loop; a
    sync call on that loop's own thread is refused instead of deadlocking."""
    app = counting_graph(MailslotCheckpointer(shared_ms, namespace=_ns()))
    cfg = {"configurable": {"thread_id": "hop"}}
    await asyncio.to_thread(app.invoke, {"n": 1}, cfg)
    assert (await app.aget_state(cfg)).values["n"] == 2
    with pytest.raises(RuntimeError, match="deadlock"):
        app.checkpointer.get_tuple(cfg)


async def test_checkpoint_too_large_is_refused_and_nothing_written(shared_ms: mailslot.Mailslot) -> None:
    saver = MailslotCheckpointer(shared_ms, namespace=_ns())
    app = counting_graph(saver)
    cfg = {"configurable": {"thread_id": "big"}}
    await app.ainvoke({"n": 1}, cfg)
    before = [t.checkpoint["id"] async for t in saver.alist(cfg)]
    limit = saver.store.max_value_size
    with pytest.raises(CheckpointTooLarge) as info:
        await app.aupdate_state(cfg, {"blob": "x" * (limit + 1)})
    err = info.value
    # update_state stores the update as a pending write first: that is the part refused.
    assert err.thread_id == "big" and err.part == "write 'blob'" and err.size > limit == err.limit
    assert isinstance(err, ValueError)
    assert [t.checkpoint["id"] async for t in saver.alist(cfg)] == before
    with pytest.raises(CheckpointTooLarge, match="channel 'blob'"):
        cp = empty_checkpoint()
        cp["channel_values"] = {"blob": "z" * (limit + 1)}
        await saver.aput(_config("big2"), cp, {}, {"blob": "1"})
    assert await saver.aget_tuple(_config("big2")) is None
    # A value just under the limit (with room for the record's framing) is stored.
    await app.aupdate_state(cfg, {"blob": "y" * (limit - 200)})
    assert (await app.aget_state(cfg)).values["blob"] == "y" * (limit - 200)


async def test_unchanged_channels_are_not_stored_again(shared_ms: mailslot.Mailslot) -> None:
    """Blobs per channel version, as the Postgres saver keeps them: a step that changes one
    channel writes one blob, and pruning drops the blobs no kept checkpoint refers to."""
    saver = MailslotCheckpointer(shared_ms, namespace=_ns())
    app = counting_graph(saver)
    cfg = {"configurable": {"thread_id": "blobs"}}
    await app.ainvoke({"n": 1, "blob": "large" * 1000}, cfg)
    blobs = [k for k in await saver.store.keys(prefix=("b",)) if "~blob" in k]
    assert len(blobs) == 1  # written by the input step, not again by "add"
    n_blobs = await saver.store.keys(prefix=("b",))
    await saver.aprune(["blobs"], strategy="keep_latest")
    assert len(await saver.store.keys(prefix=("b",))) < len(n_blobs)
    state = await app.aget_state(cfg)
    assert state.values == {"n": 2, "blob": "large" * 1000} and state.interrupts


async def test_latest_checkpoint_follows_deletes_and_racing_writers(shared_ms: mailslot.Mailslot) -> None:
    """The latest checkpoint is read through a head key: it is the newest id whatever the
    order the puts land in, and moves back when the newest is deleted."""
    saver = MailslotCheckpointer(shared_ms, namespace=_ns())
    cps = [empty_checkpoint() for _ in range(6)]  # ids increase in creation order
    order = [3, 0, 5, 1, 4, 2]
    await asyncio.gather(
        *(saver.aput(_config("race"), cps[i], {"run_id": f"run-{i}"}, {}) for i in order)  # type: ignore[typeddict-unknown-key]
    )
    latest = await saver.aget_tuple(_config("race"))
    assert latest is not None and latest.checkpoint["id"] == cps[5]["id"]
    await saver.adelete_for_runs(["run-5", "run-4"])
    latest = await saver.aget_tuple(_config("race"))
    assert latest is not None and latest.checkpoint["id"] == cps[3]["id"]
    await saver.aprune(["race"], strategy="keep_latest")
    assert [t.checkpoint["id"] async for t in saver.alist(_config("race"))] == [cps[3]["id"]]
    await saver.adelete_thread("race")
    assert await saver.aget_tuple(_config("race")) is None
    assert await saver.store.keys() == []


async def test_watch_interrupts_reports_a_thread_once_its_state_shows_the_pause(
    shared_ms: mailslot.Mailslot,
) -> None:
    """LangGraph may store a step's writes before its checkpoint: the interrupt is reported
    when the checkpoint it belongs to is the thread's latest, not before."""
    saver = MailslotCheckpointer(shared_ms, namespace=_ns())
    first = await saver.aput(_config("w"), empty_checkpoint(), {}, {})
    async with saver.watch_interrupts() as threads:
        it = aiter(threads)
        await saver.aput_writes(first, [("__interrupt__", ["now"])], "task-a")
        assert await asyncio.wait_for(anext(it), 10) == "w"
        cp = empty_checkpoint()
        second = {"configurable": {**_config("w")["configurable"], "checkpoint_id": cp["id"]}}
        await saver.aput_writes(second, [("__interrupt__", ["early"])], "task-b")  # before its checkpoint
        await saver.aput_writes(second, [("plain", 1)], "task-c")  # not an interrupt: never reported
        pending = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.5)
        assert not pending.done()
        await saver.aput(first, cp, {}, {})
        assert await asyncio.wait_for(pending, 10) == "w"
