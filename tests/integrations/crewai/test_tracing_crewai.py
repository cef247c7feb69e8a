"""A crew served from a mailbox is traced: the ask, the task's delivery, the crew's run
(``invoke_agent``), the mailbox tool it calls (``execute_tool``) with its send, and the reply,
all in the asker's trace. Offline: a scripted LLM."""

from __future__ import annotations

import asyncio

import mailslot
from _kit import CREWAI_WARNINGS, one_task_crew, script
from mailslot import sync
from mailslot_crewai import CrewWorker, SendMessageTool
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tracing_support import child_of, one, records, spans_fixture  # noqa: F401 (spans: a fixture)

pytestmark = CREWAI_WARNINGS


async def test_a_served_crew_is_in_the_askers_trace(
    ms: mailslot.Mailslot, sms: sync.SyncMailslot, spans: InMemorySpanExporter
) -> None:
    inbox = await ms.open("summariser", ttl=30)
    notes = await ms.open("notes", ttl=30)
    asker = await ms.open("asker", ttl=30)

    def crew(msg: mailslot.Message) -> object:
        llm = script("native", [("send_message", {"to": "notes", "message": "researched"})], "summary")
        return one_task_crew(llm, [SendMessageTool(mailbox=sms)], description="Summarise {topic}")

    serving = asyncio.ensure_future(CrewWorker(inbox, crew).run(limit=1))
    reply = await asker.ask("summariser", {"topic": "NATS"}, timeout=60)
    await asyncio.wait_for(serving, 30)
    assert reply.text() == "summary"
    note = await notes.receive(timeout=10)
    await note.ack()
    got = records(spans)
    ask = one(got, "ask summariser", SpanKind.CLIENT)
    delivery = one(got, "receive summariser", SpanKind.CONSUMER)
    run = one(got, "invoke_agent summariser")
    tool = one(got, "execute_tool send_message")
    assert child_of(one(got, "send summariser"), ask)
    assert child_of(run, delivery) and child_of(tool, run)
    assert child_of(one(got, "send notes"), tool)
    answer = one(got, "send asker._replies")
    assert child_of(answer, run) and child_of(one(got, "receive asker._replies"), answer)
    assert child_of(one(got, "receive notes"), one(got, "send notes"))
    assert {s["trace_id"] for s in got} == {ask["trace_id"]}
    assert run["attributes"]["mailslot.integration"] == "crewai"
    assert tool["attributes"]["mailslot.integration"] == "crewai"
