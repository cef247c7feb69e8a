"""A served AgentChat agent (AgentWorker) reached through a proxy BaseChatAgent."""

from __future__ import annotations

import asyncio

import mailslot
import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.conditions import MaxMessageTermination, TextMentionTermination
from autogen_agentchat.teams import RoundRobinGroupChat
from autogen_core import CancellationToken
from mailslot_autogen import AgentResult, AgentWorker, MailslotRemoteAgent, RemoteAgentError
from mailslot_autogen.testing import replay
from testsupport import wait_for


async def test_proxy_delegates_to_served_assistant(ms: mailslot.Mailslot) -> None:
    model = replay("the answer is 42")
    solver_box = await ms.open("solver")
    me = await ms.open("caller")
    async with AgentWorker(solver_box, AssistantAgent("solver", model_client=model)) as worker:
        proxy = MailslotRemoteAgent("solver_proxy", mailbox=me, remote="solver", timeout=30)
        result = await proxy.run(task="what is 6*7?")
    last = result.messages[-1]
    assert (last.source, last.to_text()) == ("solver_proxy", "the answer is 42")
    assert worker.completed == 1
    # the remote model saw the task text that went through the mailbox
    seen = [m.content for m in model.create_calls[0]["messages"]]
    assert "what is 6*7?" in seen


async def test_proxy_inside_round_robin_team(ms: mailslot.Mailslot) -> None:
    remote_model = replay("b says: ship it", "b says: still ship it")
    local_model = replay("question for b", "thanks TERMINATE")
    b_box, me = await ms.open("agent-b"), await ms.open("agent-a")
    async with AgentWorker(b_box, AssistantAgent("b", model_client=remote_model)):
        team = RoundRobinGroupChat(
            [
                AssistantAgent("a", model_client=local_model),
                MailslotRemoteAgent("b_proxy", mailbox=me, remote="agent-b", timeout=30),
            ],
            termination_condition=TextMentionTermination("TERMINATE") | MaxMessageTermination(6),
        )
        result = await team.run(task="decide on the release")
    turns = [(m.source, m.to_text()) for m in result.messages]
    assert turns == [
        ("user", "decide on the release"),
        ("a", "question for b"),
        ("b_proxy", "b says: ship it"),
        ("a", "thanks TERMINATE"),
    ]
    # b's context held the whole conversation so far (the proxy sent only what was new to it)
    b_saw = [m.content for m in remote_model.create_calls[0]["messages"]]
    assert "decide on the release" in b_saw and "question for b" in b_saw


async def test_plain_client_can_drive_a_worker(ms: mailslot.Mailslot) -> None:
    """Anything that sends {"task": ...} (or text) gets an AgentResult JSON back."""
    box, me = await ms.open("summarizer"), await ms.open("script")
    async with AgentWorker(box, lambda: AssistantAgent("s", model_client=replay("short summary"))):
        reply = await me.ask("summarizer", {"task": "summarize this"}, timeout=30)
        text_reply = await me.ask("summarizer", "plain text task", timeout=30)
    assert AgentResult.model_validate(reply.json()).content == "short summary"
    assert text_reply.json()["content"] == "short summary"


async def test_failing_task_is_retried_then_succeeds(ms: mailslot.Mailslot) -> None:
    attempts: list[int] = []

    def factory() -> AssistantAgent:
        attempts.append(1)
        # the first attempt has an empty script: the run raises
        return AssistantAgent("flaky", model_client=replay() if len(attempts) == 1 else replay("ok now"))

    box = await ms.open("flaky", max_deliver=3, ack_wait=5)
    me = await ms.open("caller")
    async with AgentWorker(box, factory, backoff=(0.2,)) as worker:
        reply = await me.ask("flaky", "try", timeout=30)
    assert reply.json()["content"] == "ok now"
    assert (worker.failed, worker.completed, worker.termed) == (1, 1, 0)


async def test_always_failing_task_is_termed_after_max_deliveries(ms: mailslot.Mailslot) -> None:
    deliveries: list[int] = []
    box = await ms.open("broken", max_deliver=3, ack_wait=5)
    me = await ms.open("caller")
    worker = AgentWorker(box, lambda: AssistantAgent("broken", model_client=replay()), backoff=(0.2, 0.3))
    orig = worker.handle

    async def spy(msg: mailslot.Message) -> bool:
        deliveries.append(msg.delivery_count)
        return await orig(msg)

    worker.handle = spy  # type: ignore[method-assign]
    async with worker:
        proxy = MailslotRemoteAgent("p", mailbox=me, remote="broken", timeout=30)
        with pytest.raises(RemoteAgentError, match="No more mock responses"):
            await proxy.run(task="doomed")
        await wait_for(lambda: worker.termed == 1)
        await asyncio.sleep(1.0)  # a termed message must not come back
    assert deliveries == [1, 2, 3]
    assert (worker.failed, worker.completed, worker.termed) == (3, 0, 1)
    assert "No more mock responses" in str(worker.last_error)


async def test_worker_serves_a_team(ms: mailslot.Mailslot) -> None:
    def make_team() -> RoundRobinGroupChat:
        return RoundRobinGroupChat(
            [
                AssistantAgent("writer", model_client=replay("draft v1")),
                AssistantAgent("editor", model_client=replay("final: v1 APPROVED")),
            ],
            termination_condition=TextMentionTermination("APPROVED"),
        )

    box, me = await ms.open("desk"), await ms.open("caller")
    async with AgentWorker(box, make_team):
        proxy = MailslotRemoteAgent("desk_proxy", mailbox=me, remote="desk", timeout=30)
        result = await proxy.run(task="write the release note")
    last = result.messages[-1]
    assert last.to_text() == "final: v1 APPROVED"
    # the team's inner turns come back as inner messages of the proxy's response
    assert [m.to_text() for m in result.messages[1:-1]] == ["draft v1"]


async def test_remote_context_follows_the_proxy_thread(ms: mailslot.Mailslot) -> None:
    model = replay("first answer", "second answer", "fresh answer")
    box, me = await ms.open("memo"), await ms.open("caller")
    async with AgentWorker(box, AssistantAgent("memo", model_client=model)):
        proxy = MailslotRemoteAgent("memo_proxy", mailbox=me, remote="memo", timeout=30)
        await proxy.run(task="remember 7")
        await proxy.run(task="what did I say?")
        await proxy.on_reset(CancellationToken())  # a new conversation: a new thread
        await proxy.run(task="hello again")
    second = [m.content for m in model.create_calls[1]["messages"]]
    third = [m.content for m in model.create_calls[2]["messages"]]
    assert "remember 7" in second and "what did I say?" in second
    assert "remember 7" not in third and "hello again" in third
