"""Traces across agents: spans for send, delivery, settlement and ask/reply, linked by the
``traceparent`` header, on a real server; nothing traced and no header without a provider."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import mailslot
import pytest
from mailslot import tracing
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from testsupport import client_env, unique
from tracing_support import child, child_of, line, one, read_records, records, spans_fixture, tracer_of  # noqa: F401 (spans: a fixture)

HERE = Path(__file__).resolve().parent


async def test_send_receive_ack_is_one_trace(
    shared_ms: mailslot.Mailslot, spans: InMemorySpanExporter
) -> None:
    addr = unique("traced")
    mb = await shared_ms.open(addr)
    try:
        receipt = await shared_ms.send(addr, {"n": 1}, priority="urgent", thread_id="t-1")
        msg = await mb.receive(timeout=10)
        assert msg.headers[p.Header.TRACEPARENT].startswith("00-")
        assert p.Header.TRACEPARENT not in msg.user_headers
        await msg.ack()
    finally:
        await mb.close()
    got = records(spans)
    send = one(got, f"send {addr}", SpanKind.PRODUCER)
    recv = one(got, f"receive {addr}", SpanKind.CONSUMER)
    ack = one(got, f"ack {addr}", SpanKind.CLIENT)
    assert child_of(recv, send) and child_of(ack, recv)
    version, trace_id, span_id, flags = msg.headers[p.Header.TRACEPARENT].split("-")
    assert (version, trace_id, span_id) == ("00", send["trace_id"], send["span_id"])
    assert int(flags, 16) & 1  # sampled
    assert send["attributes"] == {
        "messaging.system": "mailslot",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": addr,
        "messaging.message.id": receipt.id,
        "messaging.message.body.size": len(msg.data),
        "mailslot.priority": "urgent",
        "mailslot.thread_id": "t-1",
        "mailslot.sender": "tester",
        "mailslot.seq": receipt.seq,
    }
    a = recv["attributes"]
    assert a["messaging.operation.type"] == "receive" and a["messaging.message.id"] == receipt.id
    assert a["messaging.destination.name"] == addr and a["mailslot.delivery_count"] == 1
    assert a["mailslot.seq"] == receipt.seq and a["mailslot.thread_id"] == "t-1"
    assert ack["attributes"]["messaging.operation.type"] == "settle"
    assert ack["attributes"]["messaging.operation.name"] == "ack"


async def test_nak_and_term_are_settle_spans(
    shared_ms: mailslot.Mailslot, spans: InMemorySpanExporter
) -> None:
    addr = unique("traced-nak")
    mb = await shared_ms.open(addr)
    try:
        await shared_ms.send(addr, "x")
        first = await mb.receive(timeout=10)
        await first.nak()
        again = await mb.receive(timeout=10)
        await again.term(reason="cannot do it")
    finally:
        await mb.close()
    got = records(spans)
    send = one(got, f"send {addr}")
    receives = [s for s in got if s["name"] == f"receive {addr}"]
    assert len(receives) == 2 and all(child_of(r, send) for r in receives)
    assert [r["attributes"]["mailslot.delivery_count"] for r in receives] == [1, 2]
    nak, term = one(got, f"nak {addr}"), one(got, f"term {addr}")
    assert child_of(nak, receives[0]) and child_of(term, receives[1])
    assert term["attributes"]["mailslot.reason"] == "cannot do it"
    assert term["attributes"]["messaging.operation.name"] == "term"


async def test_ask_and_reply_are_one_trace(shared_ms: mailslot.Mailslot, spans: InMemorySpanExporter) -> None:
    asker_addr, worker_addr = unique("asker"), unique("worker")
    asker = await shared_ms.open(asker_addr)
    worker = await shared_ms.open(worker_addr)

    async def answer() -> None:
        m = await worker.receive(timeout=10)
        await m.reply(m.text().upper())
        await m.ack()

    try:
        task = asyncio.ensure_future(answer())
        reply = await asker.ask(worker_addr, "hi", timeout=10)
        await task
        assert reply.text() == "HI"
    finally:
        await asker.close()
        await worker.close()
    got = records(spans)
    ask = one(got, f"ask {worker_addr}", SpanKind.CLIENT)
    request = one(got, f"send {worker_addr}", SpanKind.PRODUCER)
    delivery = one(got, f"receive {worker_addr}", SpanKind.CONSUMER)
    answer_send = one(got, f"send {asker_addr}._replies", SpanKind.PRODUCER)
    answer_delivery = one(got, f"receive {asker_addr}._replies", SpanKind.CONSUMER)
    assert child_of(request, ask) and child_of(delivery, request)
    assert child_of(answer_send, delivery) and child_of(answer_delivery, answer_send)
    assert child_of(one(got, f"ack {worker_addr}"), delivery)
    corr = ask["attributes"]["messaging.message.conversation_id"]
    assert corr == request["attributes"]["messaging.message.id"]
    assert answer_send["attributes"]["messaging.message.conversation_id"] == corr
    assert answer_delivery["attributes"]["messaging.message.conversation_id"] == corr


async def test_reply_for_is_traced_too(shared_ms: mailslot.Mailslot, spans: InMemorySpanExporter) -> None:
    asker_addr, worker_addr = unique("asker"), unique("worker")
    asker = await shared_ms.open(asker_addr)
    worker = await shared_ms.open(worker_addr)
    try:
        receipt = await asker.request(worker_addr, "later")
        m = await worker.receive(timeout=10)
        await m.reply("done")
        await m.ack()
        reply = await asker.reply_for(receipt.correlation_id, timeout=10)
        assert reply.text() == "done"
    finally:
        await asker.close()
        await worker.close()
    got = records(spans)
    answer_send = one(got, f"send {asker_addr}._replies")
    assert child_of(one(got, f"receive {asker_addr}._replies"), answer_send)
    assert child_of(answer_send, one(got, f"receive {worker_addr}"))


async def test_handling_puts_sends_under_the_delivery(
    shared_ms: mailslot.Mailslot, spans: InMemorySpanExporter
) -> None:
    a, b = unique("hop-a"), unique("hop-b")
    mb_a = await shared_ms.open(a)
    try:
        await shared_ms.send(a, "task")
        msg = await mb_a.receive(timeout=10)
        with tracing.handling(msg):
            await shared_ms.send(b, "onward")
        assert tracing.context_of(msg) is not None
        await msg.ack()
    finally:
        await mb_a.close()
    got = records(spans)
    assert child_of(one(got, f"send {b}"), one(got, f"receive {a}"))


async def test_two_processes_share_one_trace(
    shared_server: NatsServer, shared_ms: mailslot.Mailslot, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    """The worker runs in a child process with its own provider, exporting to a file: its
    delivery is a child of our send, our delivery of its reply a child of its reply's send."""
    asker_addr, worker_addr = unique("asker"), unique("worker-proc")
    out = tmp_path / "worker-spans.jsonl"
    args = [sys.executable, str(HERE / "tracing_proc.py"), worker_addr, str(out)]
    async with child(args, client_env(shared_server)) as proc:
        assert await line(proc) == "ready"
        async with await shared_ms.open(asker_addr) as asker:
            reply = await asker.ask(worker_addr, {"task": 7}, timeout=30)
        assert reply.json() == {"done": {"task": 7}}
        assert await line(proc) == "done"
        assert await asyncio.to_thread(proc.wait, 30) == 0
    ours, theirs = records(spans), read_records(out)
    request = one(ours, f"send {worker_addr}")
    delivery = one(theirs, f"receive {worker_addr}", SpanKind.CONSUMER)
    work = one(theirs, "work")
    answer_send = one(theirs, f"send {asker_addr}._replies")
    assert child_of(delivery, request) and child_of(work, delivery) and child_of(answer_send, work)
    assert child_of(one(theirs, f"ack {worker_addr}"), delivery)
    assert child_of(one(ours, f"receive {asker_addr}._replies"), answer_send)
    assert {s["trace_id"] for s in ours + theirs} == {request["trace_id"]}


async def test_no_provider_no_span_no_header(shared_ms: mailslot.Mailslot) -> None:
    """With the API installed but no SDK provider (the global one is OpenTelemetry's proxy),
    Mailslot adds no header; nothing breaks on the way."""
    addr = unique("untraced")
    async with await shared_ms.open(addr) as mb:
        await shared_ms.send(addr, "plain")
        msg = await mb.receive(timeout=10)
        assert p.Header.TRACEPARENT not in msg.headers
        assert tracing.context_of(msg) is None
        with tracing.handling(msg), tracing.span("nothing", parent=msg) as s:
            assert s is None
        await msg.ack()


async def test_set_enabled_false_turns_it_off_with_a_provider(
    shared_ms: mailslot.Mailslot, spans: InMemorySpanExporter
) -> None:
    addr = unique("switched-off")
    tracing.set_enabled(False)
    try:
        async with await shared_ms.open(addr) as mb:
            await shared_ms.send(addr, "plain")
            msg = await mb.receive(timeout=10)
            await msg.ack()
    finally:
        tracing.set_enabled(True)
    assert p.Header.TRACEPARENT not in msg.headers
    assert spans.get_finished_spans() == ()


async def test_a_traceparent_sent_untraced_passes_through(shared_ms: mailslot.Mailslot) -> None:
    """Without a provider a caller's own traceparent (send_many's ``traceparent``) is carried
    as given, neither replaced nor dropped."""
    addr = unique("passthrough")
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with await shared_ms.open(addr) as mb:
        await shared_ms.send_many([{"to": addr, "payload": "x", "traceparent": given}])
        msg = await mb.receive(timeout=10)
        assert msg.headers[p.Header.TRACEPARENT] == given
        await msg.ack()


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "00-00000000000000000000000000000000-0000000000000000-01",  # all-zero ids
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # no flags
    ],
)
async def test_a_malformed_foreign_traceparent_is_ignored(
    shared_ms: mailslot.Mailslot, spans: InMemorySpanExporter, bad: str
) -> None:
    addr = unique("foreign-trace")
    await shared_ms.js.publish(
        p.mail_subject(p.Priority.NORMAL, addr), b"hello", headers={"traceparent": bad}
    )
    async with await shared_ms.open(addr) as mb:
        msg = await mb.receive(timeout=10)
        assert msg.text() == "hello"
        await msg.ack()
    got = records(spans)
    recv = one(got, f"receive {addr}")
    assert recv["parent_id"] is None  # a root span: the foreign header named nothing
    assert child_of(one(got, f"ack {addr}"), recv)


async def test_send_many_traces_each_message(
    shared_ms: mailslot.Mailslot, spans: InMemorySpanExporter
) -> None:
    addr = unique("traced-many")
    receipts = await shared_ms.send_many([{"to": addr, "payload": i} for i in range(3)], window=2)
    async with await shared_ms.open(addr) as mb:
        got = await mb.receive_batch(max=3, timeout=10)
        await mb.ack_many(got)
    sends = {s["attributes"]["messaging.message.id"]: s for s in records(spans) if s["kind"] == "PRODUCER"}
    assert set(sends) == {r.id for r in receipts}
    assert {s["attributes"]["mailslot.seq"] for s in sends.values()} == {r.seq for r in receipts}
    for m in got:
        _, trace_id, span_id, _ = m.headers[p.Header.TRACEPARENT].split("-")
        assert (sends[m.id]["trace_id"], sends[m.id]["span_id"]) == (trace_id, span_id)
    # ack_many: one settle span per message, under that message's delivery
    deliveries = {
        s["attributes"]["messaging.message.id"]: s for s in records(spans) if s["kind"] == "CONSUMER"
    }
    acks = [s for s in records(spans) if s["name"] == f"ack {addr}"]
    assert sorted(a["attributes"]["messaging.message.id"] for a in acks) == sorted(sends)
    assert all(child_of(a, deliveries[a["attributes"]["messaging.message.id"]]) for a in acks)


def test_the_sync_twin_sends_within_the_callers_span(
    shared_server: NatsServer, spans: InMemorySpanExporter
) -> None:
    """The sync twin runs the send on its own loop's thread: the caller's span goes along
    (``run_coroutine_threadsafe`` schedules it in a copy of the caller's context)."""
    from mailslot import sync

    addr = unique("traced-sync")
    tracer = tracer_of(spans)
    c = shared_server.credentials
    with (
        sync.connect(shared_server.url, user=c.user, password=c.password, name="sync-tester") as ms,
        tracer.start_as_current_span("caller"),
    ):
        ms.send(addr, "from a thread")
    got = records(spans)
    assert child_of(one(got, f"send {addr}"), one(got, "caller"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "0af7651916cd43dd8448eb211c80319c"),
        ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", None),  # uppercase: not W3C
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", None),
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", None),
        ("00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_trace_id_of_reads_only_a_well_formed_traceparent(value: str | None, expected: str | None) -> None:
    """What the console groups a trace by: plain parsing, no OpenTelemetry needed."""
    headers = {} if value is None else {p.Header.TRACEPARENT: value}
    assert tracing.trace_id_of(headers) == expected


def test_without_the_otel_extra_everything_works_untraced(shared_server: NatsServer) -> None:
    """A process where ``opentelemetry`` cannot be imported (the extra not installed): send,
    receive, ack, ask and reply work, no traceparent is added, the tracing helpers are no-ops."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "tracing_noextra_proc.py"), unique("no-extra")],
        env=client_env(shared_server),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert p.Header.TRACEPARENT not in seen["headers"] and p.Header.MSG_ID in seen["headers"]
    assert seen == {**seen, "reply": "yes", "span": True, "context": True, "otel_loaded": False}
