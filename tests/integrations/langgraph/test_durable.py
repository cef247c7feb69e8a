"""Durable request/reply inside a graph: interrupt(), the Resumer, reply-before-wait and the
idempotent send on re-execution (all in one process; cross-process in test_crossproc.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypedDict

import mailslot
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from lg_helpers import ask_graph, assert_empty
from mailslot_langgraph import (
    MailContext,
    Resumer,
    await_reply,
    is_mail_wait,
    resume_when_replied,
    send_request,
)
from testsupport import wait_for


async def test_request_reply_pauses_and_resumer_resumes_typed(
    planner: mailslot.Mailbox, coder: mailslot.Mailbox, responder: Any, tmp_path: Any
) -> None:
    r = responder(lambda p: {"n": p["q"] * 2})
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "cp.db")) as saver:
        app = ask_graph(saver)
        cfg = {"configurable": {"thread_id": "t-1"}}
        ctx = MailContext(mailbox=planner)
        async with Resumer(app, planner, context=ctx) as res:
            out = await res.ainvoke({"q": 21}, cfg)
            assert len(out.interrupts) == 1 and is_mail_wait(out.interrupts[0].value)
            assert out.interrupts[0].response_schema["title"] == "Answer"
            done = await res.next_result(timeout=20)
        assert done.error is None, done.error
        assert done.thread_id == "t-1"
        assert done.output.value["answer"] == {"n": 42}
        assert done.output.interrupts == ()
    # The node ran twice (pause, resume) but the request went out once.
    assert len(r.got) == 1
    assert r.got[0].thread_id == "t-1"  # the LangGraph thread id rides along
    assert r.got[0].reply_to and r.got[0].reply_to.startswith("planner")
    await r.stop()
    await assert_empty(coder)


@dataclass
class GateCtx(MailContext):
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    crash_once: list[bool] = field(default_factory=list)


class Split(TypedDict, total=False):
    cid: str
    answer: Any


def split_graph(checkpointer: Any) -> Any:
    """send (node 1) -> slow work (node 2) -> wait (node 3): the reply can beat the wait."""

    async def send(state: Split, runtime: Runtime[GateCtx]) -> Split:
        receipt = await send_request(runtime.context.mailbox, "coder", "ping")
        if runtime.context.crash_once:
            runtime.context.crash_once.pop()
            raise RuntimeError("crash after sending")
        return {"cid": receipt["id"]}

    async def work(state: Split, runtime: Runtime[GateCtx]) -> Split:
        await asyncio.wait_for(runtime.context.gate.wait(), 20)
        return {}

    async def wait(state: Split) -> Split:
        return {"answer": await_reply(state["cid"])}

    g = StateGraph(Split, context_schema=GateCtx)
    for name, fn in (("send", send), ("work", work), ("wait", wait)):
        g.add_node(name, fn)
    g.add_edge(START, "send")
    g.add_edge("send", "work")
    g.add_edge("work", "wait")
    g.add_edge("wait", END)
    return g.compile(checkpointer=checkpointer)


async def test_reply_before_wait(planner: mailslot.Mailbox, responder: Any) -> None:
    r = responder(lambda p: f"pong to {p}")
    app = split_graph(InMemorySaver())
    ctx = GateCtx(mailbox=planner)
    cfg = {"configurable": {"thread_id": "early"}}
    async with Resumer(app, planner, context=ctx) as res:
        run = asyncio.create_task(res.ainvoke({}, cfg))
        # The remote agent has answered while the graph is still working, before its wait.
        await wait_for(lambda: r.got, timeout=10)
        assert r.got, "the request never arrived"
        await asyncio.sleep(0.3)  # let the reply be stored
        assert not run.done()
        ctx.gate.set()
        out = await asyncio.wait_for(run, 20)
        assert out.interrupts, "the graph should pause at its wait"
        done = await res.next_result(timeout=20)
    assert done.error is None
    assert done.output.value["answer"] == "pong to ping"
    assert len(r.got) == 1


async def test_send_is_not_repeated_when_node_reexecutes(
    planner: mailslot.Mailbox, coder: mailslot.Mailbox
) -> None:
    app = split_graph(InMemorySaver())
    ctx = GateCtx(mailbox=planner, crash_once=[True])
    ctx.gate.set()
    cfg = {"configurable": {"thread_id": "crashy"}}
    with pytest.raises(RuntimeError, match="crash after sending"):
        await app.ainvoke({}, cfg, context=ctx)
    out = await app.ainvoke(None, cfg, context=ctx, version="v2")  # LangGraph re-runs "send"
    assert out.interrupts
    first = await coder.receive(timeout=10)
    assert first.text() == "ping"
    assert out.interrupts[0].value["correlation_id"] == first.id
    await first.reply("pong")
    await first.ack()
    await assert_empty(coder)  # exactly one request
    done = await resume_when_replied(app, planner, "crashy", context=ctx, timeout=20)
    assert done.output.value["answer"] == "pong"


async def test_requests_of_one_step_to_two_recipients_each_go_out_once(
    planner: mailslot.Mailbox, coder: mailslot.Mailbox, ms: mailslot.Mailslot
) -> None:
    """The recipient is part of a request's identity: the same step asking two agents sends
    two requests, and re-running the step (after a failure) sends neither again."""
    reviewer = await ms.open("reviewer", ttl=60)
    failed: list[bool] = []

    async def ask_both(state: Split, runtime: Runtime[MailContext]) -> Split:
        a = await send_request(runtime.context.mailbox, "coder", "estimate?")
        b = await send_request(runtime.context.mailbox, "reviewer", "estimate?")
        if not failed:
            failed.append(True)
            raise RuntimeError("fails once after sending")
        assert (a["to"], b["to"]) == ("coder", "reviewer") and a["id"] != b["id"]
        return {"cid": a["id"]}

    g = StateGraph(Split, context_schema=MailContext)
    g.add_node("ask_both", ask_both)
    g.add_edge(START, "ask_both")
    g.add_edge("ask_both", END)
    app = g.compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "two-recipients"}}
    with pytest.raises(RuntimeError, match="fails once"):
        await app.ainvoke({}, cfg, context=MailContext(mailbox=planner))
    out = await app.ainvoke(None, cfg, context=MailContext(mailbox=planner))
    for box in (coder, reviewer):
        got = await box.receive(timeout=10)
        assert got.text() == "estimate?" and got.thread_id == "two-recipients"
        await got.ack()
        await assert_empty(box)  # exactly one request each
    assert out["cid"]
    # What the node relies on: one idempotency key, two recipients, two messages; the same
    # recipient again, a duplicate.
    first = await planner.request("coder", 1, idempotency_key="k")
    other = await planner.request("reviewer", 1, idempotency_key="k")
    again = await planner.request("coder", 1, idempotency_key="k")
    assert not first.duplicate and not other.duplicate and again.duplicate
    await reviewer.destroy()


async def test_resume_when_replied_refuses_a_thread_not_waiting(planner: mailslot.Mailbox) -> None:
    app = split_graph(InMemorySaver())
    with pytest.raises(LookupError):
        await resume_when_replied(app, planner, "nobody", timeout=1)


async def test_invalid_reply_is_reported_not_swallowed(planner: mailslot.Mailbox, responder: Any) -> None:
    responder(lambda p: {"n": "not a number"})
    app = ask_graph(InMemorySaver())
    ctx = MailContext(mailbox=planner)
    async with Resumer(app, planner, context=ctx) as res:
        await res.ainvoke({"q": 1}, {"configurable": {"thread_id": "bad"}})
        done = await res.next_result(timeout=20)
    assert done.error is not None and "validation error" in str(done.error).lower()
    state = await app.aget_state({"configurable": {"thread_id": "bad"}})
    assert state.interrupts, "the thread still waits; it can be answered again"
