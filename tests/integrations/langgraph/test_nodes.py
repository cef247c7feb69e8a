"""receive_node / send_node: mail in and out of graph state through the runtime context."""

from __future__ import annotations

from typing import Any, TypedDict

import mailslot
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from lg_helpers import assert_empty
from mailslot_langgraph import Mail, MailContext, receive_node, send_node


class State(TypedDict, total=False):
    topic: str
    mail: Mail
    sent: dict[str, Any]
    n: int


def line(*nodes: tuple[str, Any], checkpointer: Any = None) -> Any:
    g = StateGraph(State, context_schema=MailContext)
    prev = START
    for name, fn in nodes:
        g.add_node(name, fn)
        g.add_edge(prev, name)
        prev = name
    g.add_edge(prev, END)
    return g.compile(checkpointer=checkpointer)


async def test_receive_node_merges_next_mail(planner: mailslot.Mailbox, ms: mailslot.Mailslot) -> None:
    await ms.send("planner", {"task": 7}, priority="urgent", thread_id="T1", sender="boss")
    app = line(("inbox", receive_node(timeout=10)))
    out = await app.ainvoke({}, context=MailContext(mailbox=planner))
    mail = out["mail"]
    assert mail["payload"] == {"task": 7}
    assert mail["sender"] == "boss" and mail["priority"] == "urgent" and mail["thread_id"] == "T1"
    await assert_empty(planner)  # acked


async def test_receive_node_thread_filter_leaves_other_mail(
    planner: mailslot.Mailbox, ms: mailslot.Mailslot
) -> None:
    await ms.send("planner", "for someone else", thread_id="other")
    await ms.send("planner", "mine", thread_id="wanted")
    app = line(("inbox", receive_node(thread_id=lambda s: s["topic"], timeout=10)))
    out = await app.ainvoke({"topic": "wanted"}, context=MailContext(mailbox=planner))
    assert out["mail"]["payload"] == "mine"
    left = await planner.receive(timeout=10)  # given back, not lost
    assert left.text() == "for someone else"
    await left.ack()


async def test_receive_node_predicate_and_merge(planner: mailslot.Mailbox, ms: mailslot.Mailslot) -> None:
    for n in (1, 5, 12):
        await ms.send("planner", {"n": n})
    node = receive_node(
        where=lambda m, s: m.json()["n"] > s["n"],
        merge=lambda mail, s: {"n": mail["payload"]["n"]},
        timeout=10,
    )
    out = await line(("pick", node)).ainvoke({"n": 4}, context=MailContext(mailbox=planner))
    assert out["n"] == 5
    rest = []
    for _ in range(2):
        m = await planner.receive(timeout=10)
        rest.append(m.json()["n"])
        await m.ack()
    assert sorted(rest) == [1, 12]


async def test_receive_node_times_out(planner: mailslot.Mailbox) -> None:
    app = line(("inbox", receive_node(timeout=0.5)))
    with pytest.raises(mailslot.Timeout):
        await app.ainvoke({}, context=MailContext(mailbox=planner))


async def test_receive_node_by_correlation_id(planner: mailslot.Mailbox, coder: mailslot.Mailbox) -> None:
    receipt = await planner.request("coder", "2+2?")
    req = await coder.receive(timeout=10)
    await req.reply("4")
    await req.ack()

    class S(TypedDict, total=False):
        cid: str
        mail: Mail

    g = StateGraph(S, context_schema=MailContext)
    g.add_node("reply", receive_node(correlation_id=lambda s: s["cid"], timeout=10))
    g.add_edge(START, "reply")
    g.add_edge("reply", END)
    out = await g.compile().ainvoke({"cid": receipt.id}, context=MailContext(mailbox=planner))
    assert out["mail"]["payload"] == "4" and out["mail"]["correlation_id"] == receipt.id


async def test_send_node_then_receive_round_trip(planner: mailslot.Mailbox, coder: mailslot.Mailbox) -> None:
    app = line(
        ("send", send_node("coder", lambda s: {"do": s["topic"]}, key="sent", priority="urgent")),
        checkpointer=InMemorySaver(),
    )
    cfg = {"configurable": {"thread_id": "s1"}}
    out = await app.ainvoke({"topic": "lint"}, cfg, context=MailContext(mailbox=planner))
    assert out["sent"]["to"] == "coder" and out["sent"]["duplicate"] is False
    m = await coder.receive(timeout=10)
    assert m.json() == {"do": "lint"} and m.sender == "planner" and m.id == out["sent"]["id"]
    await m.ack()


async def test_send_node_is_idempotent_when_the_node_reruns(
    planner: mailslot.Mailbox, coder: mailslot.Mailbox
) -> None:
    """A failure after the send makes LangGraph re-run the node for the same step: one mail."""
    fail = [True]

    def boom(state: State) -> State:
        if fail:
            fail.pop()
            raise RuntimeError("downstream failure")
        return {}

    g = StateGraph(State, context_schema=MailContext)
    send = send_node("coder", "hello", key="sent")

    async def send_then_fail(state: State, runtime: Any) -> State:
        update = await send(state, runtime)
        boom(state)
        return update

    g.add_node("send", send_then_fail)
    g.add_edge(START, "send")
    g.add_edge("send", END)
    app = g.compile(checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "idem"}}
    ctx = MailContext(mailbox=planner)
    with pytest.raises(RuntimeError):
        await app.ainvoke({}, cfg, context=ctx)
    out = await app.ainvoke(None, cfg, context=ctx)
    assert out["sent"]["duplicate"] is True
    m = await coder.receive(timeout=10)
    assert m.text() == "hello"
    await m.ack()
    await assert_empty(coder)


async def test_missing_context_is_a_clear_error() -> None:
    app = line(("inbox", receive_node(timeout=1)))
    with pytest.raises(LookupError, match="context_schema=MailContext"):
        await app.ainvoke({})
