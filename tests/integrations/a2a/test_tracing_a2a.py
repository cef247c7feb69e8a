"""An A2A request over the MAILSLOT binding is traced: the client's send, the runner's
delivery, the executor's run (``invoke_agent``) and the task events it sends back, in the
caller's trace."""

from __future__ import annotations

from a2a_support import EchoExecutor, user_request
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from testsupport import unique, wait_for
from tracing_support import child_of, one, records, spans_fixture, tracer_of  # noqa: F401 (spans: a fixture)


async def test_an_a2a_task_is_one_trace(a2a_client, runner, spans: InMemorySpanExporter) -> None:
    agent, requester = unique("echo"), unique("planner")
    await runner(agent, EchoExecutor())
    client = await a2a_client(agent, requester=requester)
    with tracer_of(spans).start_as_current_span("host"):
        events = [ev async for ev in client.send_message(user_request("hello"))]
    assert events
    ran = f"invoke_agent {agent}"
    await wait_for(lambda: any(s["name"] == ran for s in records(spans)))  # the run ends after the ack
    got = records(spans)
    host = one(got, "host")
    request = one(got, f"send {agent}", SpanKind.PRODUCER)
    delivery = one(got, f"receive {agent}", SpanKind.CONSUMER)
    run = one(got, ran)
    assert child_of(request, host) and child_of(delivery, request) and child_of(run, delivery)
    assert run["attributes"]["mailslot.integration"] == "a2a"
    sent_back = [s for s in got if s["kind"] == "PRODUCER" and child_of(s, run)]
    assert sent_back, [(s["name"], s["parent_id"]) for s in got]
    assert child_of(one(got, f"ack {agent}"), delivery)
