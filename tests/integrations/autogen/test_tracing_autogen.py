"""An AgentChat agent served by an AgentWorker and reached through MailslotRemoteAgent is
traced end to end: the proxy's ask, the task's delivery, the worker's run (``invoke_agent``)
and its reply, in the caller's trace. Offline: AutoGen's replay model."""

from __future__ import annotations

import mailslot
from autogen_agentchat.agents import AssistantAgent
from mailslot_autogen import AgentWorker, MailslotRemoteAgent
from mailslot_autogen.testing import replay
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from tracing_support import child_of, one, records, spans_fixture, tracer_of  # noqa: F401 (spans: a fixture)


async def test_proxy_to_worker_and_back_is_one_trace(
    ms: mailslot.Mailslot, spans: InMemorySpanExporter
) -> None:
    solver_box, me = await ms.open("solver"), await ms.open("caller")
    async with AgentWorker(solver_box, AssistantAgent("solver", model_client=replay("42"))) as worker:
        proxy = MailslotRemoteAgent("solver_proxy", mailbox=me, remote="solver", timeout=30)
        with tracer_of(spans).start_as_current_span("team"):
            result = await proxy.run(task="what is 6*7?")
    assert result.messages[-1].to_text() == "42" and worker.completed == 1
    got = records(spans)
    team = one(got, "team")
    task_send = one(got, "send solver", SpanKind.PRODUCER)
    delivery = one(got, "receive solver", SpanKind.CONSUMER)
    run = one(got, "invoke_agent solver")
    answer = one(got, "send caller._replies", SpanKind.PRODUCER)
    assert child_of(task_send, team) and child_of(delivery, task_send)
    assert child_of(run, delivery) and child_of(answer, run)
    assert child_of(one(got, "receive caller._replies", SpanKind.CONSUMER), answer)
    assert child_of(one(got, "ack solver"), delivery)
    assert {s["trace_id"] for s in got} == {team["trace_id"]}
    attrs = run["attributes"]
    assert (attrs["gen_ai.agent.name"], attrs["mailslot.integration"]) == ("solver", "autogen")
    assert attrs["mailslot.mailbox"] == "solver"
