"""Tool arguments: ``message`` (``body`` still accepted), text sent as text/plain, a JSON object
as application/json, driven by an AssistantAgent on a replay model."""

from __future__ import annotations

import mailslot
from autogen_agentchat.agents import AssistantAgent
from mailslot_autogen import mailbox_tools
from mailslot_autogen.testing import replay, tool_call


async def _run(mb: mailslot.Mailbox, *calls) -> None:
    agent = AssistantAgent("agent_a", model_client=replay(*calls, tools=True), tools=mailbox_tools(mb))
    await agent.run(task="go")


async def test_message_text_json_and_the_old_name(ms: mailslot.Mailslot) -> None:
    mb = await ms.open("agent-a")
    schema = mailbox_tools(mb)[0].schema["parameters"]["properties"]
    assert "message" in schema and "body" not in schema
    await _run(mb, tool_call("send_message", to="agent-b", message={"issue": 7, "files": ["a.py"]}))
    await _run(mb, tool_call("send_message", to="agent-b", message="plain words"))
    await _run(mb, tool_call("send_message", to="agent-b", body="old spelling"))
    inbox = await ms.open("agent-b")
    got = [await inbox.receive(timeout=10) for _ in range(3)]
    assert got[0].content_type == "application/json" and got[0].json() == {"issue": 7, "files": ["a.py"]}
    assert got[1].content_type.startswith("text/plain") and got[1].text() == "plain words"
    assert got[2].text() == "old spelling"
    for m in got:
        await m.ack()


async def test_broadcast_takes_message_structured(ms: mailslot.Mailslot) -> None:
    mb = await ms.open("agent-a")
    async with ms.subscribe("build.done") as sub:
        await sub.start()
        await _run(mb, tool_call("broadcast", topic="build.done", message={"version": "1.2"}))
        ev = await sub.next(timeout=10)
    assert (ev.content_type, ev.json()) == ("application/json", {"version": "1.2"})
