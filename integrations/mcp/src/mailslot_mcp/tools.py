"""The tools: ten, with short descriptions, because every definition costs the host's model
context on every turn. The calling agent is never an argument (see identity.py)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal, TypeVar

import mailslot
from mailslot import tracing

from ._compat import App, Ctx, ToolError, request_of
from .hub import AgentState, Held, Hub
from .identity import Identity
from .views import broadcast_view, card_view, message_view, receipt_view

T = TypeVar("T")
Prio = Literal["critical", "urgent", "normal", "low"]

#: Received but unsettled mail the server keeps per agent (a wait filter that matches nothing
#: would otherwise drain the whole mailbox into memory).
HOLD_LIMIT = 200
#: Broadcast history read: stop when nothing more arrives for this long.
READ_IDLE = 0.3
#: A cancelled wait's mail is redelivered after this long, not at once (see wait_for_mail).
CANCELLED_GIVE_BACK_DELAY = 1.0


def typed_errors(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """An SDK error becomes a tool error carrying its type and message (never a traceback).
    Each call is an ``execute_tool`` span (:mod:`mailslot.tracing`; nothing when off)."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> T:
        try:
            with tracing.tool("mcp", fn.__name__):
                return await fn(*args, **kwargs)
        except mailslot.MailslotError as exc:
            raise ToolError(f"{type(exc).__name__}: {exc}") from None

    return run


async def bounded(
    ctx: Ctx, timeout: float, what: str, attempt: Callable[[float], Awaitable[T | None]]
) -> T | None:
    """Call ``attempt(slice)`` until it returns something or ``timeout`` passes, reporting
    progress between slices. Hosts time tool calls out (about 60 s), so the bound is the
    server's, whatever the client does; a cancelled call stops at once (the SDK's receive
    keeps what it fetched for the next one)."""
    loop_time = asyncio.get_running_loop().time
    start = loop_time()
    step = max(0.5, min(5.0, timeout / 4))
    await ctx.report_progress(0, timeout, f"waiting for {what}")
    while True:  # one attempt even with timeout 0: a look at what is there now
        found = await attempt(max(0.0, min(step, timeout - (loop_time() - start))))
        if found is not None:
            return found
        elapsed = loop_time() - start
        if elapsed >= timeout:
            return None
        await ctx.report_progress(round(elapsed, 1), timeout, f"waiting for {what}")


async def requester_gone(ctx: Ctx) -> bool:
    """True when the HTTP request this call answers has disconnected. Over stdio there is no
    request object: a closed stdin cancels the call instead (see wait_for_mail)."""
    try:
        request = ctx.request_context.request
    except (LookupError, ValueError):
        return False
    is_disconnected = getattr(request, "is_disconnected", None)
    return bool(is_disconnected is not None and await is_disconnected())


def _priority(name: str) -> mailslot.Priority:
    return mailslot.Priority[name.upper()]


def compact_schema(schema: Any) -> Any:
    """A JSON schema without what a model does not need: titles, and the ``anyOf [X, null]``
    pydantic writes for an optional argument (its absence already says null). Arguments are
    still validated by the full pydantic model, so this only shortens what is advertised."""
    if isinstance(schema, list):
        return [compact_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: compact_schema(v) for k, v in schema.items() if k != "title"}
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options and out.get("default", ...) is None:
        rest = [o for o in options if o != {"type": "null"}]
        out.pop("anyOf")
        out.pop("default")
        if len(rest) == 1:
            out.update(rest[0])
        else:
            out["anyOf"] = rest
    return out


def compact(app: App) -> None:
    """Shorten every registered tool's advertised argument schema (see compact_schema)."""
    for tool in app._tool_manager.list_tools():
        tool.parameters = compact_schema(tool.parameters)
        if tool.output_schema is not None:
            tool.output_schema = {"type": "object"}


def caller(app: App, identity: Identity) -> str:
    """The agent behind the request being handled (see identity.py)."""
    if identity.fixed is not None:
        return identity.fixed
    return identity.current(request_of(app))


def register(app: App, hub: Hub, identity: Identity, *, max_wait: float) -> None:
    async def me() -> AgentState:
        return await hub.agent(caller(app, identity))

    def cap(timeout: float) -> float:
        return min(max(float(timeout), 0.0), max_wait)

    @app.tool(
        description="Send mail to an agent; it waits in their mailbox until read. ttl, delay in "
        "seconds. The receipt says duplicate=true if idempotency_key was used before."
    )
    @typed_errors
    async def send(
        to: str,
        body: Any,
        priority: Prio = "normal",
        thread: str | None = None,
        ttl: float | None = None,
        delay: float | None = None,
        idempotency_key: str | None = None,
        reply_to: str | None = None,
    ) -> dict[str, Any]:
        state = await me()
        r = await state.mailbox.send(
            to,
            body,
            priority=priority,
            thread_id=thread,
            ttl=ttl,
            delay=delay,
            idempotency_key=idempotency_key,
            reply_to=reply_to,
        )
        return receipt_view(r)

    @app.tool(
        description=f"Block until mail arrives (at most {max_wait:g} s), most urgent first. "
        "On 'no mail yet' call again. Ack what you handled."
    )
    @typed_errors
    async def wait_for_mail(
        ctx: Ctx,
        timeout: float = 45,
        min_priority: Prio = "low",
        thread: str | None = None,
        limit: int = 10,
    ) -> dict[str, Any]:
        state = await me()
        floor = _priority(min_priority)
        limit = max(1, min(limit, 100))

        def matching() -> list[Held]:
            found = [
                h
                for h in state.held.values()
                if not h.shown
                and h.message.priority <= floor
                and (thread is None or h.message.thread_id == thread)
            ]
            found.sort(key=lambda h: (h.message.priority, h.message.seq))
            return found[:limit]

        taken: list[str] = []  # what this call received, to give back if it is abandoned

        async def attempt(t: float) -> list[Held] | None:
            found = matching()
            if found:
                return found
            if len(state.held) >= HOLD_LIMIT:
                raise mailslot.InvalidInput(
                    f"{len(state.held)} received messages are unsettled; ack or nak some first"
                )
            async with state.recv_lock:
                batch = await state.mailbox.receive_batch(max=limit, timeout=t)
            for m in batch:
                state.held[m.id] = Held(m)
                taken.append(m.id)
            return matching() or None

        try:
            with state.blocking():
                found = await bounded(ctx, cap(timeout), "mail", attempt)
        except BaseException:
            # Cancelled: mcp 1.x cancels a request whose transport closed (stdio EOF, an HTTP
            # session ended). What this call took and showed nobody goes back, redelivered a
            # moment later: at once, this still-open mailbox's own waiting pull would take it
            # again and the server's stop that follows a closed stdin would give it back once
            # more (each a delivery counted toward max_deliver).
            await state.give_back(
                [i for i in taken if i in state.held and not state.held[i].shown],
                delay=CANCELLED_GIVE_BACK_DELAY,
            )
            raise
        if found and await requester_gone(ctx):
            # The HTTP request that asked is gone (the client dropped it without a cancel, as
            # mcp 1.30 clients do): its reply would be delivered to nobody.
            await state.give_back([h.message.id for h in found])
            return {"mail": [], "note": "the request was abandoned; its mail went back"}
        if not found:
            return {"mail": [], "note": "no mail yet: call wait_for_mail again"}
        for h in found:
            h.shown = True
        return {"mail": [message_view(h.message) for h in found]}

    @app.tool(description="Peek at unacked mail in your mailbox without taking it.")
    @typed_errors
    async def inbox(limit: int = 20, thread: str | None = None) -> dict[str, Any]:
        state = await me()
        limit = max(1, min(limit, 200))
        waiting = await state.mailbox.peek(limit=200 if thread is not None else limit)
        if thread is not None:
            waiting = [m for m in waiting if m.thread_id == thread][:limit]
        stats = await state.mailbox.stats()
        return {
            "total": stats.total,
            "mail": [message_view(m, held=m.id in state.held) for m in waiting],
        }

    @app.tool(
        description="Settle mail by id: ack (done, removed), nak (retry later, after delay s) "
        "or term (give up, to dead letters with reason)."
    )
    @typed_errors
    async def ack(
        ids: list[str],
        action: Literal["ack", "nak", "term"] = "ack",
        reason: str | None = None,
        delay: float | None = None,
    ) -> dict[str, Any]:
        state = await me()
        messages = state.take(ids)
        if action == "ack":
            await state.mailbox.ack_many(messages)
        else:
            for m in messages:
                await (m.nak(delay=delay) if action == "nak" else m.term(reason=reason))
        state.release(ids)
        if not state.sees_removals:  # else the mail watch reports the acks and terms
            await state.notify()
        return {action: ids}

    @app.tool(
        description="Ask an agent and wait for the answer (at most timeout s). "
        "If still pending, call again with the correlation_id."
    )
    @typed_errors
    async def ask(
        ctx: Ctx,
        to: str | None = None,
        body: Any = None,
        correlation_id: str | None = None,
        timeout: float = 30,
        priority: Prio = "normal",
        thread: str | None = None,
    ) -> dict[str, Any]:
        state = await me()
        if correlation_id is None:
            if to is None:
                raise mailslot.InvalidInput("ask needs 'to' (a new question) or 'correlation_id'")
            receipt = await state.mailbox.request(to, body, priority=priority, thread_id=thread)
            correlation_id = receipt.correlation_id
        cid = correlation_id

        async def attempt(t: float) -> mailslot.Reply | None:
            try:
                return await state.mailbox.reply_for(cid, timeout=t)
            except mailslot.Timeout:
                return None

        with state.blocking():
            reply = await bounded(ctx, cap(timeout), "the reply", attempt)
        if reply is None:
            return {"pending": True, "correlation_id": cid}
        return {"correlation_id": cid, "reply": message_view(reply)}

    @app.tool(description="Reply to a received message (same thread); acks it unless ack=false.")
    @typed_errors
    async def reply(id: str, body: Any, ack: bool = True) -> dict[str, Any]:
        state = await me()
        (m,) = state.take([id])
        if m.reply_to:
            r = await m.reply(body)
        elif m.sender:
            r = await state.mailbox.send(
                m.sender, body, thread_id=m.thread_id or m.id, correlation_id=m.id, priority=m.priority
            )
        else:
            raise mailslot.InvalidInput(f"message {id} has neither a reply-to address nor a sender")
        if ack:
            await m.ack()
            state.release([id])
        return receipt_view(r)

    @app.tool(
        description="Broadcast topics: publish body to topic, or read messages on topic (pattern "
        "with * and >) since an ISO time (default: all kept); pass next_since back to read on."
    )
    @typed_errors
    async def topic(
        action: Literal["publish", "read"],
        topic: str,
        body: Any = None,
        since: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        state = await me()
        client = state.mailbox.client
        if action == "publish":
            pub = await client.publish(topic, body, durable=True)
            return {"id": pub.id, "topic": pub.topic, "seq": pub.seq, "duplicate": pub.duplicate}
        start: Any = "all"
        if since:
            try:
                start = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError as exc:
                raise mailslot.InvalidInput(f"since must be an ISO 8601 time, not {since!r}") from exc
        read_at = datetime.now().astimezone()
        out: list[dict[str, Any]] = []
        async with client.subscribe(topic, replay=start) as sub:
            while len(out) < max(1, min(limit, 500)):
                try:
                    ev = await sub.next(timeout=READ_IDLE)
                except mailslot.Timeout:
                    break
                out.append(broadcast_view(ev))
        return {"messages": out, "next_since": read_at.isoformat()}

    @app.tool(description="Agents directory: who exists, who is online, what they can do.")
    @typed_errors
    async def agents(capability: str | None = None, include_offline: bool = True) -> dict[str, Any]:
        state = await me()
        cards = await state.mailbox.client.agents(capability=capability, include_offline=include_offline)
        return {"agents": [card_view(c, me=state.agent) for c in cards]}

    @app.tool(description="Your dead letters (mail that failed or expired): list, or requeue one by seq.")
    @typed_errors
    async def dead_letters(
        action: Literal["list", "requeue"] = "list", seq: int | None = None, limit: int = 20
    ) -> dict[str, Any]:
        state = await me()
        dlq = state.mailbox.client.dead_letters
        if action == "list":
            found = await dlq.list(state.agent, limit=max(1, min(limit, 200)))
            return {"dead_letters": [d.as_dict() for d in found]}
        if seq is None:
            raise mailslot.InvalidInput("requeue needs the dead letter's seq (from list)")
        d = await dlq.get(seq)
        if d.address != state.agent:
            raise mailslot.PermissionDenied(f"dead letter {seq} is not in your mailbox")
        r = await dlq.requeue(d)
        return {"requeued": receipt_view(r) if r else None}

    @app.tool(
        description="Advisory claims on paths (I am editing these), expiring after ttl s: "
        "claim (all or none; a conflict names the holder), renew, release, list."
    )
    @typed_errors
    async def claims(
        action: Literal["claim", "renew", "release", "list"],
        paths: list[str] | None = None,
        ttl: float = 900,
        reason: str | None = None,
        prefix: str | None = None,
    ) -> dict[str, Any]:
        state = await me()
        book = state.mailbox.client.claims
        if action == "list":
            return {"claims": [c.as_dict() for c in await book.list(prefix)]}
        keys = paths or []
        if action == "release":
            return {"released": await book.release(keys, holder=state.agent)}
        if action == "renew":
            got = await book.renew(keys, ttl=ttl, holder=state.agent)
        else:
            got = await book.claim(keys, ttl=ttl, holder=state.agent, reason=reason)
        return {"claims": [c.as_dict() for c in got]}

    compact(app)
