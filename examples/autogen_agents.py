"""AutoGen agents talking through Mailslot mailboxes, offline (scripted models, no API keys).

1. An ``AssistantAgent`` uses the mailbox tools: it mails an urgent note and reads its inbox.
2. A "reviewer" agent is served from its mailbox by an ``AgentWorker``; a team elsewhere
   reaches it through ``MailslotRemoteAgent``, a proxy that is an ordinary team member.

The models are scripted (``mailslot_autogen.testing.replay``): swap in a real model client.

Uses ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``) when set, else starts its own nats-server
in a temp dir and stops it at the end (``_broker.py`` beside this file).
"""

from __future__ import annotations

import asyncio

import mailslot
from _broker import broker
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from mailslot_autogen import AgentWorker, MailslotRemoteAgent, mailbox_tools
from mailslot_autogen.testing import replay, tool_call


async def main() -> None:
    async with mailslot.connect(name="example") as ms:
        # 1. tools
        alice = await ms.open("ex-alice")
        await ms.send("ex-alice", "standup moved to 10:00", sender="ex-pm")
        model = replay(
            tool_call("send_message", to="ex-bob", message="build is red", priority="urgent"),
            tool_call("check_inbox"),
            "ok",
            tools=True,
        )
        agent = AssistantAgent("alice", model_client=model, tools=mailbox_tools(alice), max_tool_iterations=2)
        result = await agent.run(task="warn bob, then read your mail")
        for m in result.messages:
            print(f"  {type(m).__name__:<24} {m.to_text()[:90]}")
        bob = await ms.open("ex-bob")
        note = await bob.receive(timeout=10)
        print(f"bob got [{note.priority.label}] {note.text()!r} from {note.sender}")
        await note.ack()

        # 2. a served reviewer, reached by a proxy inside a team
        reviewer_box, lead_box = await ms.open("ex-reviewer"), await ms.open("ex-lead")
        reviewer = AssistantAgent("reviewer", model_client=replay("LGTM, ship it"))
        async with AgentWorker(reviewer_box, reviewer):
            team = RoundRobinGroupChat(
                [
                    AssistantAgent(
                        "lead",
                        model_client=replay("please review PR 7", "merged. TERMINATE"),
                    ),
                    MailslotRemoteAgent("reviewer_proxy", mailbox=lead_box, remote="ex-reviewer", timeout=60),
                ],
                termination_condition=TextMentionTermination("TERMINATE") | MaxMessageTermination(6),
            )
            res = await team.run(task="release PR 7")
        for m in res.messages:
            print(f"  {m.source:>15}: {m.to_text()}")
        assert res.messages[2].to_text() == "LGTM, ship it"
        for box in (alice, bob, reviewer_box, lead_box):
            await box.destroy()
        print("autogen agents example: OK")


if __name__ == "__main__":
    with broker():
        asyncio.run(main())
