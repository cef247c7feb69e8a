"""Mailbox tools with create_agent and ToolNode, async and sync, driven by a scripted model."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import mailslot
import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from lg_helpers import Responder
from mailslot import sync as msync
from mailslot_langgraph import MailboxTools, MailContext, Resumer, mailbox_tools
from mailslot_langgraph.testing import scripted, tool_call


def tool_messages(out: dict[str, Any]) -> list[str]:
    return [str(m.content) for m in out["messages"] if isinstance(m, ToolMessage)]


async def test_create_agent_async_send_and_check_inbox(
    planner: mailslot.Mailbox, coder: mailslot.Mailbox, ms: mailslot.Mailslot
) -> None:
    await ms.send("planner", "status?", sender="boss", priority="urgent")
    model = scripted(
        tool_call("send_message", to="coder", message="fix issue 7", priority="urgent"),
        tool_call("check_inbox", max_messages=5),
        "Done.",
    )
    agent = create_agent(model=model, tools=mailbox_tools(planner), system_prompt="you are the planner")
    out = await agent.ainvoke({"messages": [HumanMessage("delegate")]})
    sent, inbox = tool_messages(out)
    assert "sent message" in sent and "coder" in sent
    mails = json.loads(inbox)
    assert [(m["payload"], m["sender"], m["priority"]) for m in mails] == [("status?", "boss", "urgent")]
    got = await coder.receive(timeout=10)
    assert (got.text(), got.sender, got.priority.label) == ("fix issue 7", "planner", "urgent")
    await got.ack()
    assert out["messages"][-1].content == "Done."


async def test_ask_agent_blocking_tool(planner: mailslot.Mailbox, responder: Any) -> None:
    r: Responder = responder(lambda q: f"answer to {q}")
    model = scripted(tool_call("ask_agent", to="coder", question="2+2?"), "B says 4")
    agent = create_agent(model=model, tools=mailbox_tools(planner, ask_timeout=20))
    out = await agent.ainvoke({"messages": [HumanMessage("ask coder")]})
    assert tool_messages(out) == ["coder replied: answer to 2+2?"]
    assert len(r.got) == 1


async def test_ask_agent_durable_interrupts_and_resumes(planner: mailslot.Mailbox, responder: Any) -> None:
    r: Responder = responder(lambda q: "4")
    model = scripted(tool_call("ask_agent", to="coder", question="2+2?"), "coder says 4")
    agent = create_agent(
        model=model, tools=mailbox_tools(planner, durable_ask=True), checkpointer=InMemorySaver()
    )
    cfg = {"configurable": {"thread_id": "agent-1"}}
    async with Resumer(agent, planner) as res:
        out = await res.ainvoke({"messages": [HumanMessage("ask coder")]}, cfg)
        assert out.interrupts and out.interrupts[0].value["to"] == "coder"
        done = await res.next_result(timeout=20)
    assert done.error is None
    assert tool_messages(done.output.value) == ["coder replied: 4"]
    assert done.output.value["messages"][-1].content == "coder says 4"
    assert len(r.got) == 1 and r.got[0].thread_id == "agent-1"


async def test_broadcast_tool(planner: mailslot.Mailbox, ms: mailslot.Mailslot) -> None:
    sub = await ms.subscribe("build.>")
    try:
        model = scripted(tool_call("broadcast", topic="build.done", message="green"), "ok")
        agent = create_agent(model=model, tools=mailbox_tools(planner, client=ms, include=["broadcast"]))
        out = await agent.ainvoke({"messages": [HumanMessage("announce")]})
        assert "build.done" in tool_messages(out)[0]
        ev = await sub.next(timeout=10)
        assert ev.topic == "build.done" and ev.text() == "green"
    finally:
        await sub.close()


def manual_graph(tools: list[Any], model: Any) -> Any:
    """A hand-built agent loop: model node + ToolNode + tools_condition (sync and async model)."""

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_node("tools", ToolNode(tools))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition)
    g.add_edge("tools", "agent")
    return g.compile()


async def test_toolnode_sync_invoke_from_a_worker_thread(
    planner: mailslot.Mailbox, coder: mailslot.Mailbox
) -> None:
    """Sync tools on an async mailbox: calls hop onto the mailbox's loop from LangGraph's threads."""
    tools = mailbox_tools(planner, include=["send_message"])
    app = manual_graph(tools, scripted(tool_call("send_message", to="coder", message="sync hi"), "sent"))
    out = await asyncio.to_thread(app.invoke, {"messages": [HumanMessage("go")]})
    assert "sent message" in tool_messages(out)[0]
    m = await coder.receive(timeout=10)
    assert m.text() == "sync hi"
    await m.ack()


async def test_toolnode_async(planner: mailslot.Mailbox, coder: mailslot.Mailbox) -> None:
    app = manual_graph(
        mailbox_tools(planner), scripted(tool_call("send_message", to="coder", message="async hi"), "sent")
    )
    out = await app.ainvoke({"messages": [HumanMessage("go")]})
    assert "sent message" in tool_messages(out)[0]
    m = await coder.receive(timeout=10)
    assert m.text() == "async hi"
    await m.ack()


async def test_sync_tool_on_the_mailbox_loop_is_refused(planner: mailslot.Mailbox) -> None:
    t = MailboxTools(planner)
    with pytest.raises(RuntimeError, match="deadlock"):
        t.send("coder", "x")


def test_fully_sync_program_with_the_sync_twin(server: Any) -> None:
    """No event loop of our own: mailslot.sync + graph.invoke + ToolNode and create_agent."""
    c = server.credentials
    with msync.connect(server.url, user=c.user, password=c.password, name="sync-agent") as ms:
        me = ms.open("sync-planner", ttl=30)
        other = ms.open("sync-coder", ttl=30)
        ms.send("sync-planner", {"todo": 1}, sender="boss")
        tools = mailbox_tools(me, client=ms)
        model = scripted(
            tool_call("send_message", to="sync-coder", message="from sync"),
            tool_call("check_inbox", wait_seconds=5),
            "all done",
        )
        out = create_agent(model=model, tools=tools).invoke({"messages": [HumanMessage("go")]})
        sent, inbox = tool_messages(out)
        assert "sync-coder" in sent and json.loads(inbox)[0]["payload"] == {"todo": 1}
        got = other.receive(timeout=10)
        assert got.text() == "from sync"
        got.ack()
        # The same tools under ainvoke: the async path hops onto the sync twin's loop.
        model = scripted(tool_call("send_message", to="sync-coder", message="from ainvoke"), "ok")
        asyncio.run(manual_graph(tools, model).ainvoke({"messages": [HumanMessage("go")]}))
        got = other.receive(timeout=10)
        assert got.text() == "from ainvoke"
        got.ack()
        me.close()
        other.close()


async def test_context_carries_the_mailbox_for_tools_too(planner: mailslot.Mailbox) -> None:
    ctx = MailContext(mailbox=planner)
    assert mailbox_tools(ctx.mailbox, include=["check_inbox"])[0].name == "check_inbox"
    with pytest.raises(ValueError, match="unknown mailbox tools"):
        mailbox_tools(planner, include=["teleport"])


async def test_ask_agent_durable_sync_invoke(planner: mailslot.Mailbox, responder: Any) -> None:
    """The sync tool path (graph.invoke in a worker thread) pauses too, with the same one request."""
    r: Responder = responder(lambda q: "sync 4")
    agent = create_agent(
        model=scripted(tool_call("ask_agent", to="coder", question="2+2?"), "fine"),
        tools=mailbox_tools(planner, durable_ask=True),
        checkpointer=InMemorySaver(),
    )
    cfg = {"configurable": {"thread_id": "agent-sync"}}
    invoke: Any = agent.invoke
    out = await asyncio.to_thread(invoke, {"messages": [HumanMessage("ask")]}, cfg, version="v2")
    assert out.interrupts
    async with Resumer(agent, planner) as res:
        assert await res.watch("agent-sync") == 1
        done = await res.next_result(timeout=20)
    assert tool_messages(done.output.value) == ["coder replied: sync 4"]
    assert len(r.got) == 1 and r.got[0].thread_id == "agent-sync"
