"""Tool arguments: ``message`` / ``question`` as text (text/plain) or a JSON object
(application/json), through create_agent on a scripted model."""

from __future__ import annotations

import mailslot
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from mailslot_langgraph import mailbox_tools
from mailslot_langgraph.testing import scripted, tool_call


async def test_structured_message_is_sent_as_json(
    planner: mailslot.Mailbox, coder: mailslot.Mailbox, ms: mailslot.Mailslot
) -> None:
    tools = {t.name: t for t in mailbox_tools(planner, client=ms)}
    assert set(tools["send_message"].args) >= {"to", "message", "priority"}
    model = scripted(
        tool_call("send_message", to="coder", message={"issue": 7}),
        tool_call("send_message", to="coder", message="words"),
        "Done.",
    )
    agent = create_agent(model=model, tools=list(tools.values()))
    await agent.ainvoke({"messages": [HumanMessage("delegate")]})
    first, second = await coder.receive(timeout=10), await coder.receive(timeout=10)
    assert (first.content_type, first.json()) == ("application/json", {"issue": 7})
    assert second.content_type.startswith("text/plain") and second.text() == "words"
    await first.ack()
    await second.ack()
