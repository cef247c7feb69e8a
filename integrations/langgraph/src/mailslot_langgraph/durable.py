"""Durable waits: send a request, ``interrupt()`` the graph, resume when the reply lands.

The request is sent from inside a LangGraph ``@task``, whose result is checkpointed: when the
graph is resumed (LangGraph re-runs the node from the top) the task is not run again, so
the recipient gets one request however often the node re-executes. If the process dies after
the send but before the task's result was checkpointed, the re-run sends again with the same
idempotency key (derived from thread id + task namespace), which the server deduplicates.

The request goes out with ``Mailbox.request``: the reply waits durably at the mailbox's reply
sub-address, whoever is running, and carries ``thread_id`` = the LangGraph thread id and
``correlation_id`` = the request id. The interrupt's value records the correlation id, so a
:class:`~mailslot_langgraph.Resumer` (in this or another process) maps reply -> thread and
interrupt, and resumes with ``Command(resume={interrupt_id: reply})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mailslot
from langgraph.func import task
from langgraph.types import interrupt

from ._bridge import LoopBridge, unwrap
from .nodes import current_thread_id, receipt_dict, step_key

#: Key marking an interrupt value as "waiting for a Mailslot reply".
MARKER = "mailslot"
AWAIT_REPLY = "await_reply"


def _request_opts(
    *,
    priority: Any,
    ttl: float | None,
    headers: Mapping[str, str] | None,
    thread_id: str | None,
) -> dict[str, Any]:
    """``Mailbox.request`` options, taken outside the task (the thread id is the node's).

    The recipient is not among them: the task passes it to ``request`` itself, and the SDK
    derives the message id from (recipient, idempotency key), so requests of one step to
    different recipients never collide, while a re-sent one to the same recipient is dropped.
    """
    return {
        "priority": priority,
        "ttl": ttl,
        "headers": dict(headers) if headers else None,
        "thread_id": thread_id or current_thread_id(),
    }


async def _do_request(
    mb: mailslot.Mailbox, to: str, payload: Any, opts: dict[str, Any], key: str | None
) -> dict[str, Any]:
    receipt = await mb.request(to, payload, idempotency_key=key, **opts)
    return receipt_dict(receipt)


# The idempotency key is computed in the task body, where LangGraph's config is in context;
# the send itself may then hop to the mailbox's loop (where that context is not).


async def _request_body(
    bridge: LoopBridge, mb: mailslot.Mailbox, to: str, payload: Any, opts: dict[str, Any]
) -> dict[str, Any]:
    key = step_key("request")
    return await bridge.run(lambda: _do_request(mb, to, payload, opts, key))


def _request_body_sync(
    bridge: LoopBridge, mb: mailslot.Mailbox, to: str, payload: Any, opts: dict[str, Any]
) -> dict[str, Any]:
    key = step_key("request")
    return bridge.call(lambda: _do_request(mb, to, payload, opts, key))


# Both share one task name, so a request made by the sync path is found (not re-sent) when
# the thread is resumed on the async path, and vice versa. (Typed Any: langgraph's @task
# overloads do not type-check with ``name=``.)
_task: Any = task
_request_task: Any = _task(name="mailslot_request")(_request_body)
_request_task_sync: Any = _task(name="mailslot_request")(_request_body_sync)


async def send_request(
    mailbox: Any,
    to: str,
    payload: Any,
    *,
    priority: str = "normal",
    ttl: float | None = None,
    headers: Mapping[str, str] | None = None,
    thread_id: str | None = None,
    loop: Any = None,
) -> dict[str, Any]:
    """Send a request from inside a node or tool, once per execution (see module doc).

    Returns the receipt as plain data; ``["id"]`` is the correlation id of the reply.
    """
    mb, found = unwrap(mailbox)
    opts = _request_opts(priority=priority, ttl=ttl, headers=headers, thread_id=thread_id)
    return await _request_task(LoopBridge(loop or found), mb, to, payload, opts)


def send_request_sync(
    mailbox: Any,
    to: str,
    payload: Any,
    *,
    priority: str = "normal",
    ttl: float | None = None,
    headers: Mapping[str, str] | None = None,
    thread_id: str | None = None,
    loop: Any = None,
) -> dict[str, Any]:
    """:func:`send_request` for sync nodes and tools (mailbox from ``mailslot.sync``, or an
    async one with the ``loop`` it runs on)."""
    mb, found = unwrap(mailbox)
    bridge = LoopBridge(loop or found)
    opts = _request_opts(priority=priority, ttl=ttl, headers=headers, thread_id=thread_id)
    return _request_task_sync(bridge, mb, to, payload, opts).result()


def await_reply(
    correlation_id: str,
    *,
    response_schema: Any = None,
    to: str | None = None,
    mailbox: str | None = None,
) -> Any:
    """Pause the graph (``interrupt``) until the reply to ``correlation_id`` is resumed in.

    Returns the reply payload, validated as ``response_schema`` (a pydantic model,
    TypedDict or dataclass) when given. Needs a checkpointer; a :class:`Resumer` resumes it.
    """
    value = {
        MARKER: AWAIT_REPLY,
        "correlation_id": correlation_id,
        "to": to,
        "mailbox": mailbox,
        "thread_id": current_thread_id(),
    }
    return interrupt(value, response_schema=response_schema)


async def request_reply(
    mailbox: Any,
    to: str,
    payload: Any,
    *,
    response_schema: Any = None,
    priority: str = "normal",
    ttl: float | None = None,
    headers: Mapping[str, str] | None = None,
    thread_id: str | None = None,
    loop: Any = None,
) -> Any:
    """Send a request and wait durably for its reply (``interrupt``), in one call.

    Call it in an async node or tool of a graph compiled with a checkpointer. The first run
    sends and pauses; after the :class:`Resumer` resumes the thread with the reply, the same
    call returns the reply payload (typed with ``response_schema``) without sending again.
    """
    mb, _ = unwrap(mailbox)
    receipt = await send_request(
        mailbox, to, payload, priority=priority, ttl=ttl, headers=headers, thread_id=thread_id, loop=loop
    )
    return await_reply(receipt["id"], response_schema=response_schema, to=to, mailbox=mb.address)


def request_reply_sync(
    mailbox: Any,
    to: str,
    payload: Any,
    *,
    response_schema: Any = None,
    priority: str = "normal",
    ttl: float | None = None,
    headers: Mapping[str, str] | None = None,
    thread_id: str | None = None,
    loop: Any = None,
) -> Any:
    """:func:`request_reply` for sync nodes and tools."""
    mb, _ = unwrap(mailbox)
    receipt = send_request_sync(
        mailbox, to, payload, priority=priority, ttl=ttl, headers=headers, thread_id=thread_id, loop=loop
    )
    return await_reply(receipt["id"], response_schema=response_schema, to=to, mailbox=mb.address)


def is_mail_wait(value: Any) -> bool:
    """True for the value of an interrupt raised by :func:`await_reply`."""
    if not isinstance(value, Mapping):
        return False
    return value.get(MARKER) == AWAIT_REPLY and bool(value.get("correlation_id"))
