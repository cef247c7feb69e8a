"""CrewAI crews talking through Mailslot mailboxes, offline (a scripted LLM, no API keys).

1. A "researcher" crew is served from its mailbox by ``CrewWorker``: one ``akickoff`` per
   inbound task, its output mailed back as the reply.
2. A "planner" crew uses the mailbox tools: it asks the researcher (durable request/reply),
   mails an urgent note to the editor, and broadcasts on ``team.news``.
3. ``CrewProgress`` broadcasts the planner's progress on ``crew.progress.*`` and mails the
   outcomes to a "lead" supervisor, without ever blocking the crew.

``python examples/crewai_agents.py [--native]``: ReAct text mode by default, native function
calling with ``--native``. Uses ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``) when set, else
starts its own nats-server in a temp dir and stops it at the end (``_broker.py`` beside this file).
"""

from __future__ import annotations

import os

# Before crewai is imported: no telemetry, no tracing, no version check (fully offline).
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("CREWAI_DISABLE_VERSION_CHECK", "true")

import asyncio
import contextlib
import sys
from typing import Any

import mailslot
from _broker import broker
from crewai import Agent, Crew, CrewOutput, Task
from mailslot import sync
from mailslot_crewai import CrewProgress, CrewWorker, mailbox_tools
from mailslot_crewai.testing import ScriptedLLM, react_action, react_final, tool_call

NATIVE = "--native" in sys.argv


def llm(calls: list[tuple[str, dict]], final: str) -> ScriptedLLM:
    """The same plan in either agent mode."""
    if NATIVE:
        steps: list[Any] = [tool_call(name, args) for name, args in calls] + [final]
    else:
        steps = [react_action(name, args) for name, args in calls] + [react_final(final)]
    return ScriptedLLM.script(steps, native=NATIVE)


def researcher_crew(msg: mailslot.Message) -> Crew:
    """A fresh crew per task (crews keep state between runs)."""
    agent = Agent(
        role="Researcher",
        goal="Answer questions about messaging systems",
        backstory="Knows NATS well.",
        llm=llm([], "JetStream keeps every message until it is acknowledged."),
    )
    task = Task(
        description="Answer {sender}'s question: {message}", expected_output="one sentence", agent=agent
    )
    return Crew(agents=[agent], tasks=[task], name="research")


def planner_crew(client: sync.SyncMailslot, inbox: sync.SyncMailbox) -> Crew:
    agent = Agent(
        role="Planner",
        goal="Plan the release with the team, by mail",
        backstory="Coordinates agents that come and go.",
        llm=llm(
            [
                ("ask_agent", {"to": "researcher", "question": "Does JetStream lose messages?"}),
                ("send_message", {"to": "editor", "message": "Draft the post today", "priority": "urgent"}),
                ("broadcast", {"topic": "team.news", "message": "Release planned for Friday"}),
            ],
            "Release planned; the editor and the team know.",
        ),
        tools=mailbox_tools(client, inbox, ask_timeout=60),
    )
    task = Task(name="plan", description="Plan the release", expected_output="a short plan", agent=agent)
    return Crew(agents=[agent], tasks=[task], name="planning")


async def main() -> None:
    async with mailslot.connect(name="example") as ms:
        researcher = await ms.open("researcher", ttl=60)
        editor = await ms.open("editor", ttl=60)
        lead = await ms.open("lead", ttl=60)
        news = await ms.subscribe("team.news")
        progress_feed = await ms.subscribe("crew.progress.>")

        worker = CrewWorker(researcher, researcher_crew)
        serving = asyncio.ensure_future(worker.run(limit=1))

        # The sync twin (what CrewAI's tools use) never blocks a running loop: from here it is
        # called through a worker thread.
        client = await asyncio.to_thread(sync.connect, name="planner")
        try:  # the sync client has a connection of its own: closed on every path
            inbox = await asyncio.to_thread(client.open, "planner", ttl=60)
            crew = planner_crew(client, inbox)
            with CrewProgress(client, supervisor="lead", crew=crew) as progress:
                result = await crew.akickoff()
                assert isinstance(result, CrewOutput)
                progress.flush()
            await asyncio.wait_for(serving, 60)
            print("mode:", "native function calling" if NATIVE else "ReAct text")
            print("planner result:", result.raw)
            print("researcher worker:", [(o.ok, o.output) for o in worker.outcomes])

            note = await editor.receive(timeout=10)
            print(f"editor got [{note.priority.label}] from {note.sender}: {note.text()}")
            await note.ack()
            print("team.news:", (await news.next(timeout=10)).text())
            kinds: list[str] = []
            while not kinds or kinds[-1] != "crew_completed":
                kinds.append((await progress_feed.next(timeout=10)).json()["kind"])
            print("progress events:", " -> ".join(kinds))
            for m in await lead.receive_batch(max=10, timeout=5):
                print("lead got:", m.json()["kind"])
                await m.ack()
            await news.close()
            await progress_feed.close()
            await asyncio.to_thread(inbox.close)
        finally:
            if not serving.done():  # a failure above: stop the worker, do not leave it pending
                serving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await serving
            await asyncio.to_thread(client.close)


if __name__ == "__main__":
    with broker():
        asyncio.run(main())
