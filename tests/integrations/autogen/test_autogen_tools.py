"""Mailbox FunctionTools driven by an AssistantAgent on a scripted (replay) model."""

from __future__ import annotations

import asyncio

import mailslot
import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import ToolCallExecutionEvent
from mailslot_autogen import TOOL_NAMES, mailbox_tools
from mailslot_autogen.testing import replay, tool_call


def _tool_outputs(result) -> list[str]:
    return [r.content for m in result.messages if isinstance(m, ToolCallExecutionEvent) for r in m.content]


async def test_tools_have_schemas(ms: mailslot.Mailslot) -> None:
    mb = await ms.open("agent-a")
    tools = mailbox_tools(mb)
    assert [t.name for t in tools] == list(TOOL_NAMES)
    send = tools[0].schema
    assert set(send["parameters"]["required"]) == {"to", "message"}
    assert [t.name for t in mailbox_tools(mb, include=["check_inbox"])] == ["check_inbox"]
    with pytest.raises(ValueError):
        mailbox_tools(mb, include=["nope"])


async def test_assistant_sends_with_priority(ms: mailslot.Mailslot) -> None:
    mb = await ms.open("agent-a")
    model = replay(tool_call("send_message", to="agent-b", body="hi b", priority="urgent"), tools=True)
    agent = AssistantAgent("agent_a", model_client=model, tools=mailbox_tools(mb))
    result = await agent.run(task="tell agent-b hi")
    assert "sent to agent-b" in _tool_outputs(result)[0]
    inbox_b = await ms.open("agent-b")
    msg = await inbox_b.receive(timeout=10)
    assert (msg.text(), msg.sender, msg.priority.label) == ("hi b", "agent-a", "urgent")
    await msg.ack()


async def test_assistant_checks_inbox_most_urgent_first(ms: mailslot.Mailslot) -> None:
    mb = await ms.open("agent-a")
    await ms.send("agent-a", "routine", priority="low", sender="ops")
    await ms.send("agent-a", "fire!", priority="critical", sender="ops")
    model = replay(tool_call("check_inbox", max_messages=5), "done", tools=True)
    agent = AssistantAgent("agent_a", model_client=model, tools=mailbox_tools(mb), reflect_on_tool_use=True)
    result = await agent.run(task="what is new?")
    out = _tool_outputs(result)[0]
    assert out.index("fire!") < out.index("routine"), out
    assert "[critical] from ops" in out
    assert result.messages[-1].to_text() == "done"
    # they were acked: nothing left
    assert (await ms.inspect("agent-a").stats()).total == 0
    again = replay(tool_call("check_inbox"), tools=True)
    res2 = await AssistantAgent("a2", model_client=again, tools=mailbox_tools(mb)).run(task="more?")
    assert _tool_outputs(res2) == ["no new messages"]


async def test_assistant_asks_and_gets_durable_answer(ms: mailslot.Mailslot) -> None:
    asker = await ms.open("agent-a")
    expert = await ms.open("expert")

    async def answer() -> None:
        q = await expert.receive(timeout=20)
        await q.reply(f"answer to {q.text()}")
        await q.ack()

    responder = asyncio.create_task(answer())
    model = replay(tool_call("ask_agent", to="expert", question="2+2?"), tools=True)
    agent = AssistantAgent("agent_a", model_client=model, tools=mailbox_tools(asker, ask_timeout=20))
    result = await agent.run(task="ask the expert")
    await responder
    assert _tool_outputs(result) == ["answer to 2+2?"]


async def test_ask_timeout_is_a_tool_answer_not_a_crash(ms: mailslot.Mailslot) -> None:
    asker = await ms.open("agent-a")
    model = replay(tool_call("ask_agent", to="nobody-home", question="hello?"), tools=True)
    agent = AssistantAgent("agent_a", model_client=model, tools=mailbox_tools(asker, ask_timeout=0.5))
    result = await agent.run(task="ask")
    assert "no answer from nobody-home" in _tool_outputs(result)[0]


async def test_assistant_broadcasts(ms: mailslot.Mailslot) -> None:
    mb = await ms.open("agent-a")
    sub = await ms.subscribe("build.>")
    try:
        model = replay(tool_call("broadcast", topic="build.done", body="v1.2 shipped"), tools=True)
        agent = AssistantAgent("agent_a", model_client=model, tools=mailbox_tools(mb))
        result = await agent.run(task="announce")
        assert _tool_outputs(result) == ["published on build.done"]
        ev = await sub.next(timeout=10)
        assert (ev.topic, ev.text()) == ("build.done", "v1.2 shipped")
    finally:
        await sub.close()
