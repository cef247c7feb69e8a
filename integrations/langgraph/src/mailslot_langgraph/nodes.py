"""Graph nodes that receive and send mail.

The mailbox reaches a node through the graph's runtime context, never a global:

>>> g = StateGraph(State, context_schema=MailContext)
>>> g.add_node("inbox", receive_node(key="mail"))
>>> await g.compile().ainvoke({}, context=MailContext(mailbox=mb))

Any context object with a ``mailbox`` attribute (or a mapping with a ``"mailbox"`` key) works,
so an application can keep its own context class.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import mailslot
from langgraph.config import get_config
from langgraph.runtime import Runtime
from mailslot import tracing

from .envelope import Mail, to_mail

StateFn = Callable[[Any], Any]
Match = Callable[[mailslot.Message], bool]


@dataclass
class MailContext:
    """Runtime context for graphs that use mail: the agent's mailbox and, for broadcast, the
    client it was opened on."""

    mailbox: mailslot.Mailbox
    client: mailslot.Mailslot | None = None


def mailbox_of(runtime: Runtime[Any] | Any) -> mailslot.Mailbox:
    """The mailbox in a node's runtime context (``context.mailbox`` or ``context["mailbox"]``)."""
    ctx = getattr(runtime, "context", runtime)
    mb = ctx.get("mailbox") if isinstance(ctx, Mapping) else getattr(ctx, "mailbox", None)
    aio = getattr(mb, "aio", mb)  # a sync-twin mailbox carries its async one
    if not isinstance(aio, mailslot.Mailbox):
        raise LookupError(
            "no mailbox in the graph's runtime context: build the graph with "
            "StateGraph(..., context_schema=MailContext) and run it with "
            "context=MailContext(mailbox=...)"
        )
    return aio


def step_key(suffix: str = "") -> str | None:
    """An idempotency key that is the same each time LangGraph re-executes the current node
    or task for the same step (resume, retry after a crash), and differs otherwise.

    It is built from the thread id and the task's checkpoint namespace, which carries the
    node name and a task id derived from the checkpoint, the step and the call index. None
    when the graph runs without a checkpointer (there is no thread to be idempotent in).
    """
    try:
        cfg = get_config()
    except RuntimeError:
        return None
    conf = cfg.get("configurable", {})
    thread = conf.get("thread_id")
    if thread is None:
        return None
    ns = conf.get("checkpoint_ns") or cfg.get("metadata", {}).get("langgraph_checkpoint_ns", "")
    return f"langgraph:{thread}:{ns}:{suffix}"


def current_thread_id() -> str | None:
    """The LangGraph thread id of the running graph, if it has one."""
    try:
        conf = get_config().get("configurable", {})
    except RuntimeError:
        return None
    tid = conf.get("thread_id")
    return None if tid is None else str(tid)


def _node_span(mb: mailslot.Mailbox) -> contextlib.AbstractContextManager[Any]:
    """The running node's span (:mod:`mailslot.tracing`; nothing when tracing is off): the
    mail it sends or receives is traced under it."""
    try:
        node = get_config().get("metadata", {}).get("langgraph_node")
    except RuntimeError:
        node = None
    return tracing.span(
        f"langgraph.node {node or 'mail'}",
        attributes={
            "langgraph.node": node,
            "langgraph.thread_id": current_thread_id(),
            "mailslot.mailbox": mb.address,
        },
    )


def _resolve(value: Any, state: Any) -> Any:
    return value(state) if callable(value) else value


async def select(
    mailbox: mailslot.Mailbox, match: Match | None = None, *, timeout: float | None = None
) -> mailslot.Message:
    """The next message that ``match`` accepts, leaving the others in the mailbox.

    Mail that does not match is held (its ack-wait clock kept running with ``in_progress``)
    and given back with ``nak`` when the wait ends, so other receivers get it afterwards. Each
    give-back counts as a delivery toward the mailbox's ``max_deliver``.
    """
    if match is None:
        return await mailbox.receive(timeout=timeout)
    held: dict[str, mailslot.Message] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    tick = max(1.0, mailbox.policy.ack_wait / 2)
    try:
        while True:
            wait = tick
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise mailslot.Timeout(f"no matching mail for {mailbox.address} within {timeout:g} s")
                wait = min(wait, left)
            try:
                m = await mailbox.receive(timeout=wait)
            except mailslot.Timeout:
                for h in held.values():
                    with contextlib.suppress(mailslot.MailslotError):
                        await h.in_progress()
                continue
            if match(m):
                return m
            held[m.id] = m  # a redelivered copy replaces a stale handle
    finally:
        for h in held.values():
            if not h.settled:
                with contextlib.suppress(mailslot.MailslotError):
                    await h.nak()


def receive_node(
    *,
    key: str = "mail",
    thread_id: str | StateFn | None = None,
    correlation_id: str | StateFn | None = None,
    where: Callable[[mailslot.Message, Any], bool] | None = None,
    timeout: float | None = None,
    merge: Callable[[Mail, Any], Mapping[str, Any]] | None = None,
) -> Callable[[Any, Runtime[Any]], Awaitable[dict[str, Any]]]:
    """A node that waits for the next mail and merges it into the state.

    - ``thread_id`` / ``where``: only mail of that thread (a value or ``fn(state)``) / mail
      the predicate ``where(msg, state)`` accepts; other mail stays in the mailbox.
    - ``correlation_id``: the reply to an earlier request (``Mailbox.request``), collected
      with ``Mailbox.reply_for`` (replies never reach ``receive``).
    - ``merge(mail, state) -> update``; by default the update is ``{key: mail}``.

    The message is acked once it is merged. The wait lives in this process: for waits that
    must survive a restart use :func:`mailslot_langgraph.request_reply` (``interrupt``).
    """

    async def node(state: Any, runtime: Runtime[Any]) -> dict[str, Any]:
        mb = mailbox_of(runtime)
        with _node_span(mb):
            return await _receive(mb, state)

    async def _receive(mb: mailslot.Mailbox, state: Any) -> dict[str, Any]:
        cid = _resolve(correlation_id, state)
        if cid is not None:
            msg: mailslot.Message = await mb.reply_for(str(cid), timeout=timeout)
        else:
            tid = _resolve(thread_id, state)
            checks: list[Match] = []
            if tid is not None:
                checks.append(lambda m: m.thread_id == str(tid))
            if where is not None:
                checks.append(lambda m: bool(where(m, state)))
            match = (lambda m: all(c(m) for c in checks)) if checks else None
            msg = await select(mb, match, timeout=timeout)
        mail = to_mail(msg)
        update = dict(merge(mail, state)) if merge is not None else {key: mail}
        await msg.ack()
        return update

    return node


def send_node(
    to: str | StateFn,
    payload: Any | StateFn,
    *,
    key: str | None = None,
    priority: str | StateFn = "normal",
    ttl: float | None = None,
    thread_id: str | StateFn | None = None,
    reply_to: str | StateFn | None = None,
    headers: Mapping[str, str] | None = None,
) -> Callable[[Any, Runtime[Any]], Awaitable[dict[str, Any]]]:
    """A node that sends one message. ``to``, ``payload``, ``priority``, ``thread_id`` and
    ``reply_to`` are values or ``fn(state)``.

    The send is idempotent per step (see :func:`step_key`): when LangGraph re-executes the
    node (a retry, a crash before its result was checkpointed), the server drops the copy.
    With ``key`` the receipt (id, to, seq, duplicate) is stored in the state under ``key``.
    """

    async def node(state: Any, runtime: Runtime[Any]) -> dict[str, Any]:
        mb = mailbox_of(runtime)
        with _node_span(mb):
            return await _send(mb, state)

    async def _send(mb: mailslot.Mailbox, state: Any) -> dict[str, Any]:
        receipt = await mb.send(
            str(_resolve(to, state)),
            _resolve(payload, state),
            priority=_resolve(priority, state),
            ttl=ttl,
            thread_id=_resolve(thread_id, state),
            reply_to=_resolve(reply_to, state),
            headers=headers,
            idempotency_key=step_key("send"),
        )
        if key is None:
            return {}
        return {key: receipt_dict(receipt)}

    return node


def receipt_dict(receipt: mailslot.Receipt) -> dict[str, Any]:
    """A receipt as plain data (safe in checkpointed state)."""
    return {
        "id": receipt.id,
        "to": receipt.to,
        "priority": receipt.priority.label,
        "seq": receipt.seq,
        "duplicate": receipt.duplicate,
    }
