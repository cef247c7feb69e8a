"""Durable request/reply over mailboxes: ``request``, ``ask`` and ``reply_for``.

A request is ordinary mail with ``Mailslot-Reply-To`` set to the asker's *reply sub-address*
(``<address>._replies``) and ``Mailslot-Correlation-Id`` set to the request's message id. The
responder answers with :meth:`Message.reply`, which is an ordinary send to that address, so
the reply is stored durably on ``mbox.<p>.<address>._replies``:

- the asker's receive loop never sees replies (its consumers filter ``mbox.<p>.<address>``
  exactly), and ``ask`` never takes other mail;
- a waiting ``ask`` learns of the reply from the headers-only bell the mail stream republishes
  (``bell.<p>.<address>._replies`` carries the correlation id and the stream sequence), fetches
  it by sequence with a direct get and deletes it: no consumer, no polling;
- a reply that arrived while the asker was away (e.g. its process restarted) waits there until
  :meth:`reply_for` finds it by scanning the reply subjects, or until the mailbox is reclaimed.

Deleting the reply decides who gets it when several replicas of the same agent look for the
same correlation id: the one whose delete succeeds hands it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mailslot_broker import protocol as p
from mailslot_broker.protocol import Header

from . import tracing
from ._agent_replies import AgentReplyBox, is_agent
from ._replies import Reply, ReplyBox
from .errors import InvalidInput
from .outgoing import Outgoing, prepare
from .sending import publish

if TYPE_CHECKING:
    from .mailbox import Mailbox


async def _reply_box(mailbox: Mailbox) -> ReplyBox:
    """The mailbox's reply box, made on first use: an agent credential's scans and takes go
    through its reply consumer (:mod:`mailslot._agent_replies`)."""
    box: ReplyBox | None = mailbox._reply_box
    if box is None:
        box = mailbox._reply_box = (AgentReplyBox if is_agent(mailbox) else ReplyBox)(mailbox)
    await box._start()
    return box


# -- the Mailbox methods -------------------------------------------------------------------------


def prepare_request(
    mb: Mailbox,
    to: str,
    payload: Any,
    *,
    priority: p.Priority | str | int,
    thread_id: str | None,
    idempotency_key: str | None,
    ttl: float | timedelta | None,
    headers: Mapping[str, str] | None,
    sender: str | None = None,
) -> Outgoing:
    mb._check_usable()
    reply_to = p.reply_address(mb.address)
    try:
        p.validate_address(reply_to)
    except Exception as exc:
        raise InvalidInput(
            f"mailbox {mb.address} is too long to receive replies (its reply address {reply_to!r} "
            f"must fit {p.MAX_ADDRESS_TOKENS} tokens and {p.MAX_ADDRESS_LENGTH} characters)"
        ) from exc
    if sender is not None:
        try:
            p.validate_address(sender)
        except Exception as exc:
            raise InvalidInput(f"sender: {exc}") from exc
    out = prepare(
        to,
        payload,
        sender=mb.address if sender is None else sender,
        max_payload=mb._link.mail_max_payload,
        priority=priority,
        ttl=ttl,
        idempotency_key=idempotency_key,
        headers=headers,
        reply_to=reply_to,
        thread_id=thread_id,
    )
    out.headers[Header.CORRELATION_ID] = out.id
    return out


async def publish_and_collect(mb: Mailbox, out: Outgoing, *, timeout: float | None) -> Reply:
    """Publish a prepared request and wait for its reply. The waiter is registered before the
    request goes out, so a fast reply cannot ring before anyone listens."""
    with tracing.asking(out):  # the request's send and its reply's delivery are within
        box = await _reply_box(mb)
        fut = box.register(out.id)
        try:
            await publish(mb._link, out)
        except BaseException:
            box._unregister(out.id, fut)
            fut.cancel()
            raise
        got = await box.collect(out.id, timeout=timeout, fut=fut)
        tracing.delivered(got)
        return got


async def collect_reply(mb: Mailbox, correlation_id: str, *, timeout: float | None, keep: bool) -> Reply:
    mb._check_usable()
    if not isinstance(correlation_id, str) or not correlation_id:
        raise InvalidInput("correlation_id must be a non-empty str")
    box = await _reply_box(mb)
    got = await box.collect(correlation_id, timeout=timeout, keep=keep)
    tracing.delivered(got)
    return got


__all__ = ["Reply", "ReplyBox", "collect_reply", "prepare_request", "publish_and_collect"]
