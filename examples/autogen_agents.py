"""AutoGen agents talking through Mailslot mailboxes, offline (scripted models, no API keys).

1. An ``AssistantAgent`` uses the mailbox tools: it mails an urgent note and reads its inbox.
2. A "reviewer" agent is served from its mailbox by an ``AgentWorker``; a team elsewhere
   reaches it through ``MailslotRemoteAgent``, a proxy that is an ordinary team member.

Uses ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``) when set, else starts its own nats-server
in a temp dir and stops it at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import AsyncIterator

import mailslot
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, ModelFamily, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient
from mailslot_autogen import AgentWorker, MailslotRemoteAgent, mailbox_tools

TOOLS = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family=ModelFamily.UNKNOWN,
    structured_output=False,
)


def call(name: str, **args: object) -> CreateResult:
    fc = FunctionCall(id=f"call_{name}", name=name, arguments=json.dumps(args))
    return CreateResult(
        finish_reason="function_calls",
        content=[fc],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )


@contextlib.asynccontextmanager
async def connect(name: str) -> AsyncIterator[mailslot.Mailslot]:
    if os.environ.get("MAILSLOT_URL"):
        async with mailslot.connect(name=name) as ms:
            yield ms
        return
    from mailslot_broker import NatsServer

    server = NatsServer(tempfile.mkdtemp(prefix="mailslot-example-")).start()
    try:
        c = server.credentials
        async with mailslot.connect(server.url, user=c.user, password=c.password, name=name) as ms:
            yield ms
    finally:
        server.stop()


async def main() -> None:
    async with connect("example") as ms:
        # 1. tools
        alice = await ms.open("ex-alice")
        await ms.send("ex-alice", "standup moved to 10:00", sender="ex-pm")
        model = ReplayChatCompletionClient(
            [
                call("send_message", to="ex-bob", body="build is red", priority="urgent"),
                call("check_inbox"),
                "ok",
            ],
            model_info=TOOLS,
        )
        agent = AssistantAgent("alice", model_client=model, tools=mailbox_tools(alice), max_tool_iterations=2)
        result = await agent.run(task="warn bob, then read your mail")
        for m in result.messages:
            print(f"  {type(m).__name__:<24} {m.to_text()[:90]}")
        bob = await ms.open("ex-bob")
        note = await bob.receive(timeout=10)
        print(f"bob got [{note.priority.label}] {note.text!r} from {note.sender}")
        await note.ack()

        # 2. a served reviewer, reached by a proxy inside a team
        reviewer_box, lead_box = await ms.open("ex-reviewer"), await ms.open("ex-lead")
        reviewer = AssistantAgent("reviewer", model_client=ReplayChatCompletionClient(["LGTM, ship it"]))
        async with AgentWorker(reviewer_box, reviewer):
            team = RoundRobinGroupChat(
                [
                    AssistantAgent(
                        "lead",
                        model_client=ReplayChatCompletionClient(["please review PR 7", "merged. TERMINATE"]),
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
    asyncio.run(main())
