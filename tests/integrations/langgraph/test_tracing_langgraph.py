"""One trace from a LangGraph node to an AutoGen worker and back: the graph's send node mails
a task, an AgentWorker (its own connection, or its own process exporting to a file; an offline
scripted model) answers it, and the graph's receive node takes the answer; every span is in
the trace the caller started."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, TypedDict

import mailslot
from autogen_agentchat.agents import AssistantAgent
from langgraph.graph import END, START, StateGraph
from mailslot_autogen import AgentWorker
from mailslot_autogen.testing import replay
from mailslot_broker import NatsServer
from mailslot_langgraph import Mail, MailContext, mailbox_tools, receive_node, send_node
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from testsupport import client_env
from tracing_support import child, child_of, line, one, read_records, records, spans_fixture, tracer_of  # noqa: F401 (spans: a fixture)


class State(TypedDict, total=False):
    answer: Mail


async def _second_client(server: NatsServer) -> mailslot.Mailslot:
    c = server.credentials
    return await mailslot.connect(server.url, user=c.user, password=c.password, name="autogen-host")


def _graph() -> Any:
    g = StateGraph(State, context_schema=MailContext)
    g.add_node("delegate", send_node("solver", "what is 6*7?", reply_to="planner"))
    g.add_node("collect", receive_node(key="answer", timeout=30))
    g.add_edge(START, "delegate")
    g.add_edge("delegate", "collect")
    g.add_edge("collect", END)
    return g.compile()


async def test_langgraph_node_to_autogen_worker_and_back_is_one_trace(
    server: NatsServer, ms: mailslot.Mailslot, spans: InMemorySpanExporter
) -> None:
    other = await _second_client(server)
    try:
        planner = await ms.open("planner", ttl=60)
        solver_box = await other.open("solver", ttl=60)
        agent = AssistantAgent("solver", model_client=replay("the answer is 42"))
        async with AgentWorker(solver_box, agent):
            with tracer_of(spans).start_as_current_span("plan"):
                out = await _graph().ainvoke({}, context=MailContext(mailbox=planner))
        assert out["answer"]["payload"]["messages"][-1]["content"] == "the answer is 42"
        await planner.close()
    finally:
        await other.close()
    got = records(spans)
    plan = one(got, "plan")
    delegate = one(got, "langgraph.node delegate")
    task_send = one(got, "send solver", SpanKind.PRODUCER)
    task_delivery = one(got, "receive solver", SpanKind.CONSUMER)
    run = one(got, "invoke_agent solver")
    answer_send = one(got, "send planner", SpanKind.PRODUCER)
    answer_delivery = one(got, "receive planner", SpanKind.CONSUMER)
    collect = one(got, "langgraph.node collect")
    assert child_of(delegate, plan) and child_of(collect, plan)
    assert child_of(task_send, delegate) and child_of(task_delivery, task_send)
    assert child_of(run, task_delivery) and child_of(answer_send, run)
    assert child_of(answer_delivery, answer_send)
    assert child_of(one(got, "ack solver"), task_delivery)
    assert child_of(one(got, "ack planner"), answer_delivery)
    assert {s["trace_id"] for s in got} == {plan["trace_id"]}
    assert delegate["attributes"]["langgraph.node"] == "delegate"
    assert run["attributes"]["gen_ai.operation.name"] == "invoke_agent"
    assert run["attributes"]["mailslot.integration"] == "autogen"


async def test_the_autogen_worker_in_another_process_is_in_the_same_trace(
    server: NatsServer, ms: mailslot.Mailslot, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    out = tmp_path / "autogen-spans.jsonl"
    args = [sys.executable, str(Path(__file__).with_name("tracing_autogen_proc.py")), str(out)]
    async with child(args, client_env(server)) as proc:
        assert await line(proc) == "ready"
        async with await ms.open("planner", ttl=60) as planner:
            with tracer_of(spans).start_as_current_span("plan"):
                answer = await _graph().ainvoke({}, context=MailContext(mailbox=planner))
        assert answer["answer"]["payload"]["messages"][-1]["content"] == "the answer is 42"
        assert await line(proc) == "done"
        assert await asyncio.to_thread(proc.wait, 30) == 0
    ours, theirs = records(spans), read_records(out)
    task_send = one(ours, "send solver", SpanKind.PRODUCER)
    delivery = one(theirs, "receive solver", SpanKind.CONSUMER)
    run = one(theirs, "invoke_agent solver")
    answer_send = one(theirs, "send planner", SpanKind.PRODUCER)
    assert child_of(task_send, one(ours, "langgraph.node delegate"))
    assert child_of(delivery, task_send) and child_of(run, delivery) and child_of(answer_send, run)
    assert child_of(one(ours, "receive planner", SpanKind.CONSUMER), answer_send)
    assert {s["trace_id"] for s in ours + theirs} == {one(ours, "plan")["trace_id"]}


async def test_tool_spans_hold_their_mail(
    server: NatsServer, ms: mailslot.Mailslot, spans: InMemorySpanExporter
) -> None:
    """A LangGraph mailbox tool is an ``execute_tool`` span; the send it makes is its child."""
    planner = await ms.open("planner", ttl=60)
    try:
        tools = {t.name: t for t in mailbox_tools(planner)}
        await tools["send_message"].ainvoke({"to": "coder", "message": "hello"})
    finally:
        await planner.close()
    got = records(spans)
    tool = one(got, "execute_tool send_message")
    assert child_of(one(got, "send coder"), tool)
    assert tool["attributes"]["gen_ai.tool.name"] == "send_message"
    assert tool["attributes"]["mailslot.integration"] == "langgraph"
