"""The MCP server's tools are traced (``execute_tool``) and its mail joins the sender's trace:
a coding agent waits for mail sent in our trace and replies to it, through a real
``mailslot-mcp`` over stdio that exports its spans to a file."""

from __future__ import annotations

from pathlib import Path

import mailslot
from conftest import Peer
from mcp import StdioServerParameters
from mcp.client.stdio import stdio_client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from testsupport import PYTHON, unique
from tracing_support import child_of, one, read_records, records, spans_fixture, tracer_of  # noqa: F401 (spans: a fixture)

HERE = Path(__file__).resolve().parent


async def test_a_coding_agents_reply_is_in_the_senders_trace(
    mcp_env: dict[str, str], shared_ms: mailslot.Mailslot, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    agent, me_addr = unique("mcp-coder"), unique("mcp-asker")
    out = tmp_path / "mcp-spans.jsonl"
    env = {**mcp_env, "MAILSLOT_AGENT": agent}
    params = StdioServerParameters(
        command=PYTHON, args=[str(HERE / "tracing_mcp_proc.py"), str(out)], env=env
    )
    async with await shared_ms.open(me_addr) as me:
        async with stdio_client(params) as (r, w), Peer().connected(r, w) as peer:
            with tracer_of(spans).start_as_current_span("host"):
                await me.send(agent, "review PR 12", reply_to=me_addr)
            got = await peer.call("wait_for_mail", timeout=20)
            (mail,) = got["mail"]
            await peer.call("reply", id=mail["id"], body="looks good")
        answer = await me.receive(timeout=20)
        assert answer.text() == "looks good"
        await answer.ack()
    ours, theirs = records(spans), read_records(out)
    request = one(ours, f"send {agent}", SpanKind.PRODUCER)
    delivery = one(theirs, f"receive {agent}", SpanKind.CONSUMER)
    answer_send = one(theirs, f"send {me_addr}", SpanKind.PRODUCER)
    assert child_of(delivery, request) and child_of(answer_send, delivery)
    assert child_of(one(ours, f"receive {me_addr}", SpanKind.CONSUMER), answer_send)
    tool = one(theirs, "execute_tool wait_for_mail")
    assert tool["attributes"]["mailslot.integration"] == "mcp"
    assert one(theirs, "execute_tool reply")["attributes"]["gen_ai.tool.name"] == "reply"
