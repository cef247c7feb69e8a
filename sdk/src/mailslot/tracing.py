"""OpenTelemetry spans for mail, linked across agents by the ``traceparent`` header.

A send is a PRODUCER span whose W3C trace context rides in the message's ``traceparent``
header; the receiver's delivery is a CONSUMER span whose parent is that context, so one trace
follows a task from agent to agent and process to process. Settling (ack, nak, term) is a
child of the delivery, a reply is sent from within it, and ``ask`` wraps its request and the
reply it waits for. Names and attributes follow OpenTelemetry's messaging conventions
(``messaging.system`` is ``mailslot``).

Tracing costs next to nothing when it cannot produce anything: without the ``mailslot[otel]``
extra every hook returns at once, and with the API but no SDK ``TracerProvider`` configured
(OpenTelemetry's default proxy, or its no-op provider) Mailslot starts no span and adds no
header. A foreign client's malformed ``traceparent`` is ignored (the delivery starts from the
receiver's current context instead), never an error.

For your own spans around handling a message: ``with mailslot.tracing.handling(msg): ...``
makes its delivery span current (sends in there join the trace), and ``context_of(msg)``
gives the OpenTelemetry context to pass as ``context=`` to your tracer.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mailslot_broker.protocol import Header

from .outgoing import check_size

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .message import Message, Receipt
    from .outgoing import Outgoing

try:
    from opentelemetry import trace as _otel
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the mailslot[otel] extra is not installed: every hook is a no-op
    _otel = None  # type: ignore[assignment]
    _enabled = False
else:
    _enabled = True
    _W3C = TraceContextTextMapPropagator()

SYSTEM = "mailslot"
CONVERSATION = "messaging.message.conversation_id"
_SCOPE = "mailslot"
#: The provider set with :func:`set_tracer_provider` (None: OpenTelemetry's global one).
_provider: TracerProvider | None = None
#: The tracer of the provider last asked (None for the API's proxy or no-op provider), so a
#: send neither builds a tracer nor inspects the provider each time.
_cached: tuple[Any, Tracer | None] | None = None
_NULL = contextlib.nullcontext()


def set_enabled(on: bool) -> None:
    """Turn Mailslot's spans and ``traceparent`` headers on (the default) or off, even with a
    provider configured. Without the ``mailslot[otel]`` extra they stay off."""
    global _enabled
    _enabled = bool(on) and _otel is not None


def set_tracer_provider(provider: TracerProvider | None) -> None:
    """Trace Mailslot with ``provider`` rather than OpenTelemetry's global one (None: back
    to the global one). For tests and benchmarks that cannot set the global provider twice."""
    global _provider
    _provider = provider


def _tracer() -> Tracer | None:
    """The tracer to use, or None when nothing would record: off, no extra, or no SDK
    provider (the API's proxy and no-op providers make spans nobody sees)."""
    global _cached
    if not _enabled:
        return None
    provider = _provider if _provider is not None else _otel.get_tracer_provider()
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    tracer: Tracer | None = None
    if not isinstance(provider, (_otel.ProxyTracerProvider, _otel.NoOpTracerProvider)):
        tracer = provider.get_tracer(_SCOPE, _version())
    _cached = (provider, tracer)
    return tracer


def _version() -> str | None:
    """The installed SDK's version, for the tracer's instrumentation scope."""
    try:
        return importlib.metadata.version("mailslot")
    except importlib.metadata.PackageNotFoundError:
        return None


def _remote(traceparent: str | None) -> Context | None:
    """The context a ``traceparent`` value names, or None if it is missing or malformed."""
    if not traceparent:
        return None
    ctx = _W3C.extract({"traceparent": traceparent})
    return ctx if _otel.get_current_span(ctx).get_span_context().is_valid else None


def _traceparent(span: Span) -> str:
    sc = span.get_span_context()
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"


def _start(
    tracer: Tracer,
    kind: str,
    op: str,
    name: str,
    destination: str,
    msg_id: str,
    *,
    context: Any,
    **extra: Any,
) -> Span:
    """A messaging span ``<name> <destination>`` (``messaging.operation.type`` ``op``,
    ``messaging.operation.name`` ``name``); ``extra`` attributes that are None are left out."""
    attrs: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": op,
        "messaging.operation.name": name,
        "messaging.destination.name": destination,
        "messaging.message.id": msg_id,
    }
    attrs.update((k, v) for k, v in extra.items() if v is not None)
    return tracer.start_span(
        f"{name} {destination}", context=context, kind=getattr(_otel.SpanKind, kind), attributes=attrs
    )


# -- hooks of the SDK ------------------------------------------------------------------------------


def start_send(out: Outgoing, *, max_payload: int) -> Span | None:
    """A PRODUCER span for one prepared message, its context written into the message's
    ``traceparent`` (a child of the one the sender passed, if valid, else of the current
    span). None, and the headers untouched, when tracing is off."""
    tracer = _tracer()
    if tracer is None:
        return None
    h = out.headers
    span = _start(
        tracer,
        "PRODUCER",
        "send",
        "send",
        out.to,
        out.id,
        context=_remote(h.get(Header.TRACEPARENT)),
        **{
            CONVERSATION: h.get(Header.CORRELATION_ID),
            "messaging.message.body.size": len(out.data),
            "mailslot.priority": out.priority.label,
            "mailslot.thread_id": h.get(Header.THREAD_ID),
            "mailslot.sender": h.get(Header.FROM),
            "mailslot.scheduled": out.scheduled or None,
        },
    )
    h[Header.TRACEPARENT] = _traceparent(span)
    try:
        check_size(out.subject, out.data, h, max_payload=max_payload, what=f"message to {out.to}")
    except BaseException as exc:
        end(span, exc)
        raise
    return span


def sent(span: Span, receipt: Receipt) -> None:
    """What the server confirmed, on the send's span, which ends."""
    span.set_attribute("mailslot.seq", receipt.seq)
    if receipt.duplicate:
        span.set_attribute("mailslot.duplicate", True)
    span.end()


def end(span: Span | None, exc: BaseException | None = None) -> None:
    """End ``span``, marked failed if ``exc`` is an error (a cancellation is not)."""
    if span is None:
        return
    if isinstance(exc, Exception):
        span.record_exception(exc)
        span.set_status(_otel.Status(_otel.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.end()


def delivered(msg: Message) -> None:
    """A CONSUMER span for a message handed out, child of its ``traceparent`` (or of the
    current span when it has none or a malformed one). It ends at once; the message keeps
    its context for settling, replying and :func:`handling`."""
    tracer = _tracer()
    if tracer is None:
        return
    h = msg.headers
    span = _start(
        tracer,
        "CONSUMER",
        "receive",
        "receive",
        msg.to,
        msg.id,
        context=_remote(h.get(Header.TRACEPARENT)),
        **{
            CONVERSATION: msg.correlation_id,
            "messaging.message.body.size": len(msg.data),
            "mailslot.priority": msg.priority.label,
            "mailslot.thread_id": msg.thread_id,
            "mailslot.sender": msg.sender,
            "mailslot.seq": msg.seq,
            "mailslot.delivery_count": msg.delivery_count,
        },
    )
    span.end()
    msg._trace = _otel.set_span_in_context(span)


def settling(msg: Message, op: str, *, reason: str | None = None) -> contextlib.AbstractContextManager[Any]:
    """A span for ``ack``/``nak``/``term`` of ``msg``, child of its delivery; nothing if the
    delivery was not traced."""
    ctx = msg._trace
    if ctx is None:
        return _NULL
    tracer = _tracer()
    if tracer is None:
        return _NULL
    span = _start(tracer, "CLIENT", "settle", op, msg.to, msg.id, context=ctx, **{"mailslot.reason": reason})
    return _otel.use_span(span, end_on_exit=True)


def settling_group(msgs: list[Message], op: str) -> contextlib.AbstractContextManager[Any]:
    """One settle span per traced message of a group settled together (``ack_many``), each a
    child of its own delivery, all ending when the group is confirmed (or failed)."""
    tracer = _tracer()
    if tracer is None:
        return _NULL
    started = [
        _start(tracer, "CLIENT", "settle", op, m.to, m.id, context=m._trace)
        for m in msgs
        if m._trace is not None
    ]
    return _ending(started) if started else _NULL


@contextlib.contextmanager
def _ending(spans: list[Span]) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        for s in spans:
            end(s, exc)
        raise
    for s in spans:
        s.end()


def asking(out: Outgoing) -> contextlib.AbstractContextManager[Any]:
    """A CLIENT span around an ``ask``: its request is sent, and its reply received, within."""
    tracer = _tracer()
    if tracer is None:
        return _NULL
    span = _start(
        tracer,
        "CLIENT",
        "send",
        "ask",
        out.to,
        out.id,
        context=None,
        **{CONVERSATION: out.id},
    )
    return _otel.use_span(span, end_on_exit=True)


def replying(msg: Message) -> contextlib.AbstractContextManager[Any]:
    """Where a reply's send span goes: under the current span if that is in ``msg``'s trace
    already (work done while handling it), else under ``msg``'s delivery."""
    ctx = msg._trace
    if ctx is None:
        return _NULL
    current = _otel.get_current_span().get_span_context()
    if current.is_valid and current.trace_id == _otel.get_current_span(ctx).get_span_context().trace_id:
        return _NULL
    return handling(msg)


# -- for applications and integrations ------------------------------------------------------------


def trace_id_of(headers: Mapping[str, str]) -> str | None:
    """The trace id (32 hex) a message's ``traceparent`` names, or None if it has none or a
    malformed one. Plain parsing: needs no OpenTelemetry (the console uses it)."""
    value = headers.get(Header.TRACEPARENT)
    if not value or len(value) != 55:
        return None
    hexes = value.split("-")
    if [len(x) for x in hexes] != [2, 32, 16, 2] or hexes[0] == "ff":
        return None
    trace, span_id = hexes[1], hexes[2]
    if any(c not in "0123456789abcdef" for c in "".join(hexes)) or trace == "0" * 32 or span_id == "0" * 16:
        return None
    return trace


def context_of(msg: Message) -> Context | None:
    """The OpenTelemetry context of ``msg``'s delivery span (None if it was not traced):
    pass it as ``context=`` to start your own spans under it."""
    return msg._trace


@contextlib.contextmanager
def handling(msg: Message) -> Iterator[None]:
    """Make ``msg``'s delivery span the current one: spans started and mail sent within
    (a reply, a task for another agent) join its trace. A no-op if it was not traced."""
    ctx = msg._trace
    if ctx is None:
        yield
        return
    from opentelemetry import context as otel_context

    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


def span(
    name: str,
    *,
    parent: Message | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """An INTERNAL span made current for the block (an integration's node or tool), child of
    ``parent``'s delivery if given and traced, else of the current span. Yields the span, or
    None when tracing is off."""
    tracer = _tracer()
    if tracer is None:
        return _NULL
    ctx = parent._trace if parent is not None else None
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    s = tracer.start_span(name, context=ctx, attributes=attrs)
    return _otel.use_span(s, end_on_exit=True)


def tool(integration: str, name: str, **attributes: Any) -> contextlib.AbstractContextManager[Span | None]:
    """The span of an integration's mailbox tool, after OpenTelemetry's GenAI conventions
    (``execute_tool <name>``): the mail it sends or waits for is traced under it."""
    return span(
        f"execute_tool {name}",
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "mailslot.integration": integration,
            **attributes,
        },
    )


def agent_run(
    integration: str, name: str, *, task: Message | None = None, **attributes: Any
) -> contextlib.AbstractContextManager[Span | None]:
    """The span of an integration's worker running an agent for one task (``invoke_agent
    <name>``), a child of the task message's delivery: its reply is sent under it."""
    return span(
        f"invoke_agent {name}",
        parent=task,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": name,
            "mailslot.integration": integration,
            **attributes,
        },
    )


__all__ = [
    "SYSTEM",
    "agent_run",
    "asking",
    "context_of",
    "delivered",
    "end",
    "handling",
    "replying",
    "sent",
    "set_enabled",
    "set_tracer_provider",
    "settling",
    "settling_group",
    "span",
    "start_send",
    "tool",
    "trace_id_of",
]
