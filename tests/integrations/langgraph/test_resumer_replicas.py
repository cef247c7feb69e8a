"""The resumer follows threads that pause after it started (pushed by the checkpointer's
store watch, no restart, no polling), and replicas never resume one thread twice."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import mailslot
import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from lg_helpers import Answer, AskState
from mailslot_broker import NatsServer
from mailslot_langgraph import MailContext, MailslotCheckpointer, Resumed, Resumer, mailbox_of, request_reply

THREADS = 50


def counted_ask_graph(checkpointer: Any, after: Counter[str]) -> Any:
    """START -> ask -> END; ``after`` counts, per thread, the runs past the reply (= resumes)."""

    async def ask(state: AskState, runtime: Runtime[MailContext]) -> AskState:
        ans = await request_reply(mailbox_of(runtime), "coder", {"q": state["q"]}, response_schema=Answer)
        after[str(state["q"])] += 1
        return {"answer": ans.model_dump()}

    g = StateGraph(AskState, context_schema=MailContext)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g.compile(checkpointer=checkpointer)


@pytest.fixture
async def ms2(server: NatsServer) -> AsyncIterator[mailslot.Mailslot]:
    c = server.credentials
    client = await mailslot.connect(server.url, user=c.user, password=c.password, name="replica-2")
    yield client
    await client.close()


async def _drain(resumers: list[Resumer], want: int, timeout: float) -> list[Resumed]:
    got: list[Resumed] = []

    async def take(r: Resumer) -> None:
        while True:
            got.append(await r.next_result())
            if len([x for x in got if x.error is None]) >= want:
                return

    tasks = [asyncio.create_task(take(r)) for r in resumers]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
    return got


async def test_two_resumers_fifty_threads_each_resumed_once(
    ms: mailslot.Mailslot, ms2: mailslot.Mailslot, coder: mailslot.Mailbox
) -> None:
    after: Counter[str] = Counter()
    mb1 = await ms.open("planner", ttl=60)
    mb2 = await ms2.open("planner", ttl=60)
    app1 = counted_ask_graph(MailslotCheckpointer(ms, namespace="replicas"), after)
    app2 = counted_ask_graph(MailslotCheckpointer(ms2, namespace="replicas"), after)
    r1 = Resumer(app1, mb1, context=MailContext(mailbox=mb1), follow=True)
    r2 = Resumer(app2, mb2, context=MailContext(mailbox=mb2), follow=True)
    async with r1, r2:
        assert r1.waiting == [] and r2.waiting == []
        # Threads pause after both resumers started; neither runs them (no Resumer.ainvoke).
        for i in range(THREADS):
            out = await app1.ainvoke(
                {"q": i},
                {"configurable": {"thread_id": f"t-{i}"}},
                context=MailContext(mailbox=mb1),
                version="v2",
            )
            assert out.interrupts
        requests = [await coder.receive(timeout=10) for _ in range(THREADS)]
        for _ in range(50):  # both have picked every thread up, pushed by the store
            if len(r1.waiting) == THREADS and len(r2.waiting) == THREADS:
                break
            await asyncio.sleep(0.1)
        assert len(r1.waiting) == THREADS and len(r2.waiting) == THREADS
        random.shuffle(requests)
        for m in requests:
            await m.reply({"n": m.json()["q"] * 2})
            await m.ack()
        got = await _drain([r1, r2], THREADS, timeout=90)
        await asyncio.sleep(1.5)  # room for a second (wrong) resume of any thread
        for r in (r1, r2):
            while not r.results.empty():
                got.append(r.results.get_nowait())
    ok = [x for x in got if x.error is None]
    assert [x for x in got if x.error is not None] == []
    assert sorted(x.thread_id for x in ok) == sorted(f"t-{i}" for i in range(THREADS))
    assert after == Counter({str(i): 1 for i in range(THREADS)})
    assert {x.output.value["answer"]["n"] for x in ok} == {2 * i for i in range(THREADS)}
    # Every thread is done in the shared store, and no resume claim is left behind.
    for i in range(THREADS):
        state = await app2.aget_state({"configurable": {"thread_id": f"t-{i}"}})
        assert state.values["answer"] == {"n": 2 * i} and not state.interrupts
    assert await ms.claims.list("mailslot-langgraph/") == []
    await mb1.close()
    await mb2.close()


async def test_follow_picks_up_a_thread_paused_in_another_process_later(
    ms: mailslot.Mailslot, ms2: mailslot.Mailslot, coder: mailslot.Mailbox, responder: Any
) -> None:
    """One resumer, started before the thread exists; the thread pauses through another
    client's checkpointer (as another process would): resumed without scan() or a restart."""
    responder(lambda p: {"n": p["q"] + 1})
    after: Counter[str] = Counter()
    mb1 = await ms.open("planner", ttl=60)
    mb2 = await ms2.open("planner", ttl=60)
    app1 = counted_ask_graph(MailslotCheckpointer(ms, namespace="follow"), after)
    other = counted_ask_graph(MailslotCheckpointer(ms2, namespace="follow"), after)
    async with Resumer(app1, mb1, context=MailContext(mailbox=mb1), follow=True) as r:
        await other.ainvoke(
            {"q": 7}, {"configurable": {"thread_id": "late"}}, context=MailContext(mailbox=mb2)
        )
        done = await r.next_result(timeout=20)
    assert done.error is None and done.thread_id == "late"
    assert done.output.value["answer"] == {"n": 8} and after == Counter({"7": 1})
    await mb1.close()
    await mb2.close()
