"""A tool-calling LangGraph agent (``langchain.agents.create_agent``) with mailbox tools:
it reads its inbox, delegates by mail, asks a colleague and broadcasts. The "LLM" is a
scripted offline model, so this runs with no API keys.

Uses ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``) when set, else starts its own nats-server
in a temp dir and stops it at the end (``_broker.py`` beside this file).
"""

from __future__ import annotations

import asyncio
import contextlib

import mailslot
from _broker import broker
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from mailslot_langgraph import mailbox_tools
from mailslot_langgraph.testing import scripted, tool_call


async def reviewer(mb: mailslot.Mailbox) -> None:
    """A colleague that answers questions (and keeps other mail)."""
    async for m in mb:
        if m.reply_to:
            await m.reply(f"LGTM, but {m.text().lower().rstrip('?')} needs a test")
        await m.ack()


async def main() -> None:
    async with mailslot.connect(name="lead") as ms:
        lead = await ms.open("lead")
        coder = await ms.open("coder")
        review = await ms.open("reviewer")
        serving = asyncio.create_task(reviewer(review))
        try:
            news = await ms.subscribe("release.>")
            await ms.send("lead", "prod login is broken", priority="critical", sender="oncall")

            model = scripted(
                tool_call("check_inbox", max_messages=5),
                tool_call("send_message", to="coder", message="fix the login bug first", priority="urgent"),
                tool_call("ask_agent", to="reviewer", question="Is the login patch OK?"),
                tool_call("broadcast", topic="release.hold", message="release on hold: login bug"),
                "Delegated the fix, the reviewer agrees, release is on hold.",
            )
            agent = create_agent(
                model=model,
                tools=mailbox_tools(lead, client=ms, ask_timeout=30),
                system_prompt="You are the tech lead.",
            )
            out = await agent.ainvoke({"messages": [HumanMessage("Handle your mail.")]})
            for m in out["messages"]:
                if isinstance(m, ToolMessage):
                    print(f"  tool {m.name}: {str(m.content)[:100]}")
            print("agent:", out["messages"][-1].content)

            task = await coder.receive(timeout=10)
            print("coder got:", task.text(), f"({task.priority.label}, from {task.sender})")
            await task.ack()
            ev = await news.next(timeout=10)
            print("broadcast seen:", ev.topic, ev.text())
            assert task.text() == "fix the login bug first" and ev.topic == "release.hold"

            await news.close()
        finally:  # the reviewer task and the subscription end on every path
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
    print("example: OK")


if __name__ == "__main__":
    with broker():
        asyncio.run(main())
