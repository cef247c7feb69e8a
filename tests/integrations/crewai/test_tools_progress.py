"""Mailbox tools and crew progress events, in both agent modes (ReAct text, native calls)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import mailslot
import pytest
from _kit import CREWAI_WARNINGS, MODES, kickoff, one_task_crew, script
from mailslot import sync
from mailslot_broker import NatsServer
from mailslot_crewai import CrewProgress, SendMessageTool, mailbox_tools

pytestmark = CREWAI_WARNINGS


def _answer_one(sms: sync.SyncMailslot, address: str, answer: str, seen: list[Any]) -> threading.Thread:
    """Another agent, in its own thread: answers the first question it gets."""
    box = sms.open(address, ttl=30)
    ready = threading.Event()

    def run() -> None:
        ready.set()
        m = box.receive(timeout=60)
        seen.append({"text": m.text(), "reply_to": m.reply_to, "sender": m.sender})
        m.reply(answer)
        m.ack()
        box.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait()
    return t


@pytest.mark.parametrize("mode", MODES)
async def test_mail_tools_in_a_crew(mode: str, sms: sync.SyncMailslot, ms: mailslot.Mailslot) -> None:
    """One agent uses all four tools: check inbox, send, broadcast, ask; what it was told by
    the inbox and by the asked agent reaches the model."""
    me = await asyncio.to_thread(sms.open, "planner", ttl=30)  # the sync twin: off the loop
    reviewer = await ms.open("reviewer", ttl=30)
    news = await ms.subscribe("team.news")
    await ms.send("planner", "low-priority chatter", priority="low", sender="bob")
    await ms.send("planner", "fix the build first", priority="urgent", sender="alice")
    asked: list[Any] = []
    oracle = await asyncio.to_thread(_answer_one, sms, "oracle", "the answer is 42", asked)

    llm = script(
        mode,
        [
            ("check_inbox", {"max_messages": 5}),
            ("send_message", {"to": "reviewer", "message": "please review PR 7", "priority": "urgent"}),
            ("broadcast", {"topic": "team.news", "message": "release at noon"}),
            ("ask_agent", {"to": "oracle", "question": "what is the answer?"}),
        ],
        lambda seen: (
            "oracle says 42"
            if "the answer is 42" in seen and "fix the build first" in seen
            else "missing tool output"
        ),
    )
    crew = one_task_crew(llm, mailbox_tools(sms, me, ask_timeout=30))
    result = await kickoff(crew)
    assert result.raw == "oracle says 42"
    assert llm.calls[0]["tools"] == (
        ["send_message", "ask_agent", "broadcast", "check_inbox"] if mode == "native" else []
    )

    # check_inbox: urgent before low, both acked.
    shown = llm.calls[1]["messages"]
    text = str(shown)
    assert text.index("fix the build first") < text.index("low-priority chatter")
    assert "[urgent] from alice" in text
    assert (await ms.inspect("planner").stats()).total == 0

    m = await reviewer.receive(timeout=10)
    assert (m.text(), m.priority.label, m.sender) == ("please review PR 7", "urgent", "planner")
    await m.ack()

    b = await news.next(timeout=10)
    assert (b.topic, b.text()) == ("team.news", "release at noon")

    oracle.join(30)
    assert asked == [{"text": "what is the answer?", "reply_to": asked[0]["reply_to"], "sender": "planner"}]
    assert asked[0]["reply_to"].startswith("planner")
    await news.close()
    await asyncio.to_thread(me.close)


def test_tool_reports_errors_as_text(sms: sync.SyncMailslot) -> None:
    """A bad address comes back to the agent as text, not as an exception."""
    tool = SendMessageTool(mailbox=sms)
    out = tool.run(to="bad address", message="x")
    assert out.startswith("could not send to bad address")
    assert tool.run(to="ok-agent", message="x").startswith("sent message")


async def _collect(sub: Any, until: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not got or got[-1]["kind"] != until:
        b = await sub.next(timeout=max(0.1, deadline - time.monotonic()))
        got.append({**b.json(), "topic": b.topic})
    return got


@pytest.mark.parametrize("mode", MODES)
async def test_progress_broadcast_and_supervisor_mail(
    mode: str, sms: sync.SyncMailslot, ms: mailslot.Mailslot
) -> None:
    boss = await ms.open("boss", ttl=30)
    sub = await ms.subscribe("crew.progress.>")
    me = await asyncio.to_thread(sms.open, "worker-1", ttl=30)  # the sync twin: off the loop
    llm = script(mode, [("send_message", {"to": "boss", "message": "working on it"})], "all done")
    crew = one_task_crew(llm, [SendMessageTool(mailbox=me)], name="report")
    progress = CrewProgress(sms, supervisor="boss", crew=crew)
    try:
        result = await kickoff(crew)
        assert progress.flush(30)
    finally:
        progress.close()
    assert result.raw == "all done"
    assert progress.errors == [] and progress.dropped == 0
    assert progress.sent == 5, progress.sent

    events = await _collect(sub, "crew_completed")
    kinds = [e["kind"] for e in events]
    assert kinds == ["crew_started", "task_started", "tool_used", "task_completed", "crew_completed"]
    assert all(e["topic"] == f"crew.progress.{e['kind']}" for e in events)
    tool = events[2]
    assert tool["tool"] == "send_message" and tool["args"]["to"] == "boss"
    assert tool["output"].startswith("sent message")
    assert events[3]["task"] == "report" and events[3]["output"] == "all done"
    assert all(e["crew"] == "mailcrew" and e["run"] == str(crew.id) for e in events)

    # The supervisor gets the agent's own mail plus the outcomes, in its mailbox.
    mail = [await boss.receive(timeout=10) for _ in range(3)]
    for m in mail:
        await m.ack()
    by_kind = {(m.json() if m.sender == "crew" else {"kind": "mail"})["kind"]: m for m in mail}
    assert set(by_kind) == {"mail", "task_completed", "crew_completed"}
    assert by_kind["crew_completed"].thread_id == str(crew.id)
    assert by_kind["task_completed"].json()["output"] == "all done"
    await sub.close()
    await asyncio.to_thread(me.close)


async def test_progress_never_breaks_the_crew(server: NatsServer, ms: mailslot.Mailslot) -> None:
    """With its client gone, progress records the failures; the crew finishes anyway, and
    a closed listener hears nothing more."""
    c = server.credentials
    dead = await asyncio.to_thread(sync.connect, server.url, user=c.user, password=c.password, name="crew")
    await asyncio.to_thread(dead.close)
    llm = script("native", [], "fine")
    crew = one_task_crew(llm, [])
    progress = CrewProgress(dead, supervisor="boss", crew=crew)
    result = await kickoff(crew)
    assert progress.flush(30)
    progress.close()
    assert result.raw == "fine"
    assert progress.sent == 0 and len(progress.errors) == 4  # crew/task started/completed
    assert all(isinstance(e, mailslot.MailslotError) for e in progress.errors)

    other = script("native", [], "again")
    await kickoff(one_task_crew(other, []))
    assert len(progress.errors) == 4
