"""9. What tracing costs: send and receive+ack with Mailslot's tracing off, on with the
OpenTelemetry API but no SDK provider, and on with an SDK provider.

"off" is ``mailslot.tracing.set_enabled(False)``, the same early return every hook takes when
the ``mailslot[otel]`` extra is not installed. "api" is the API installed with OpenTelemetry's
default (proxy) provider: Mailslot starts no span and adds no header. "sdk" is an SDK
``TracerProvider`` with a ``BatchSpanProcessor`` whose exporter drops the spans (what an OTLP
exporter costs in-process, without its network). Rounds interleave the three modes on the same
server; ratios are mode / off. Each round also counts this process's CPU time per message
(``time.process_time``, all threads: the batch processor's too), which a shared machine's load
disturbs less than throughput, and the CPU time of the tracing hooks alone on messages built
beforehand (no I/O): the microseconds a send and a delivery+ack pay. The backlog received
carries a ``traceparent`` in every mode, as a traced sender would write it, so the wire is the
same in all three.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from mailslot import tracing
from mailslot.message import Message, Receipt
from mailslot.outgoing import prepare
from mailslot_broker import protocol as p
from nats.aio.msg import Msg
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ._common import Bench, drain, median, paired_ratio, payload, raw_headers, unique
from .send import _ms_send

MODES = ("off", "api", "sdk")
_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class _Dropping(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _mode(mode: str, provider: TracerProvider) -> None:
    tracing.set_enabled(mode != "off")
    tracing.set_tracer_provider(provider if mode == "sdk" else None)


async def _send(b: Bench, n: int) -> float:
    to = unique("bench-trace-send")
    rate = await _ms_send(b, to, n)
    await b.purge(to)
    return rate


async def _receive(b: Bench, n: int) -> float:
    """Drain a backlog of ``n`` with ``receive_batch(100)`` and a confirmed ``ack()`` each
    (``ack_many`` is not traced per message)."""
    mb = await b.ms.open(unique("bench-trace-recv"), ttl=120, heartbeat=2.0)
    try:
        data = payload()
        for i in range(n):
            prio = p.PRIORITIES[i % len(p.PRIORITIES)]
            hdrs = {**raw_headers(mb.address, prio), p.Header.TRACEPARENT: _TRACEPARENT}
            await b.js.publish_async(p.mail_subject(prio, mb.address), data, headers=hdrs)
        await b.js.publish_async_completed()
        return await drain(mb, n)
    finally:
        await mb.destroy()


def _hooks(n: int) -> tuple[float, float]:
    """CPU µs per message of the tracing hooks alone, no I/O: a send's (``start_send`` +
    ``sent``) and a delivery's (``delivered`` + the ack's ``settling``), on messages built
    beforehand. End-to-end rounds on a shared machine are too noisy to show a microsecond."""
    outs = [prepare("bench-hooks", payload(), sender="bench", max_payload=1 << 20) for _ in range(n)]
    receipt = Receipt(id="x", to="bench-hooks", priority=p.Priority.NORMAL, seq=1)
    t0 = time.process_time()
    for out in outs:
        span = tracing.start_send(out, max_payload=1 << 20)
        if span is not None:
            tracing.sent(span, receipt)
    send_us = (time.process_time() - t0) / n * 1e6
    subject = p.mail_subject(p.Priority.NORMAL, "bench-hooks")
    hdrs = {**raw_headers("bench-hooks"), p.Header.TRACEPARENT: _TRACEPARENT}
    ack = "$JS.ACK.MAILSLOT_MAIL.bench.1.5.5.1700000000000000000.0"  # as JetStream delivers it
    msgs = [
        Message(Msg(None, subject=subject, reply=ack, data=payload(), headers=hdrs), None) for _ in range(n)
    ]
    t0 = time.process_time()
    for m in msgs:
        tracing.delivered(m)
        with tracing.settling(m, "ack"):
            pass
    return send_us, (time.process_time() - t0) / n * 1e6


async def run(b: Bench) -> dict[str, Any]:
    s = b.scale
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Dropping()))
    rate: dict[str, dict[str, list[float]]] = {path: {m: [] for m in MODES} for path in ("send", "receive")}
    cpu: dict[str, dict[str, list[float]]] = {path: {m: [] for m in MODES} for path in ("send", "receive")}
    hooks: dict[str, dict[str, list[float]]] = {path: {m: [] for m in MODES} for path in ("send", "receive")}
    n_recv = max(100, s.receive // 2)
    await _send(b, 20)  # warm-up
    try:
        for _ in range(s.repeat):
            for mode in MODES:
                _mode(mode, provider)
                for path, round_, n in (("send", _send, s.send_one), ("receive", _receive, n_recv)):
                    before = time.process_time()  # this process's CPU, all its threads
                    rate[path][mode].append(await round_(b, n))
                    cpu[path][mode].append((time.process_time() - before) / n * 1e6)
                send_us, receive_us = _hooks(s.send_one)
                hooks["send"][mode].append(send_us)
                hooks["receive"][mode].append(receive_us)
    finally:
        _mode("api", provider)  # back to the default: enabled, OpenTelemetry's global provider
        provider.shutdown()
    out: dict[str, Any] = {
        "messages_per_round": {"send": s.send_one, "receive": n_recv},
        "rounds": {"msgs_per_s": rate, "client_cpu_us": cpu, "hooks_cpu_us": hooks},
    }
    for path in ("send", "receive"):
        for m in MODES:
            out[f"{path}_tracing_{m}_msgs_per_s"] = median(rate[path][m])
            out[f"{path}_client_cpu_us_{m}"] = median(cpu[path][m])
            out[f"{path}_hooks_cpu_us_{m}"] = median(hooks[path][m])
        for m in ("api", "sdk"):
            out[f"{path}_{m}_vs_off_ratio"] = paired_ratio(rate[path][m], rate[path]["off"])
            out[f"{path}_cpu_{m}_vs_off_ratio"] = paired_ratio(cpu[path][m], cpu[path]["off"])
    return out
