"""Looking for mail by tags, keep-latest key and time without taking it; deleting one
waiting message; and the keep-latest replacement that ``send(..., replace_key=...)`` does.

Everything here reads the mail stream with direct gets (no consumer, nothing delivered), one
priority at a time, so results come in delivery order: most urgent first, then oldest first.
A query costs one round trip per stored message it looks at, so it suits mailboxes of
hundreds or thousands of waiting messages, not millions.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from mailslot_broker import mailscan, natscompat, tenant_reads
from mailslot_broker import protocol as p
from nats.js import errors as jserr

from . import _agent_views
from ._boundary import boundary
from ._boundary import count as check_count
from ._boundary import priority as check_priority
from .errors import InvalidInput, MessageNotFound
from .link import Link
from .message import Message, Receipt
from .outgoing import _tags_and_key
from .sending import publish_many

#: Most messages one query returns.
MAX_QUERY_LIMIT = 10_000


def _since(value: datetime | float | int | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (datetime, int, float)):
        raise InvalidInput(f"since must be a datetime or unix seconds, not {type(value).__name__}")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        return datetime.fromtimestamp(value, timezone.utc)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidInput(f"since {value!r} is not a time") from exc


def _checked(tags: Iterable[str] | None, key: str | None) -> tuple[tuple[str, ...], str | None]:
    """Tags and key checked as ``send`` checks them (the same rules, one place)."""
    try:
        return _tags_and_key(tags, key)
    except InvalidInput as exc:
        raise InvalidInput(str(exc).replace("replace_key", "key")) from exc


#: Messages read per round trip when scanning (a batched direct get).
_BATCH = 256


async def _stored_run(link: Link, address: str, prio: p.Priority, after: int, n: int) -> list[Message]:
    """Up to ``n`` stored messages at ``prio`` with a sequence above ``after``, in one request."""
    subject = p.mail_subject(prio, address)
    if link.agent is not None:  # may not read the stream by body: the sidecar reads it
        got = await _agent_views.stored_run(link, address, prio, after, n)
    else:
        got = await mailscan.next_batch(link.js, p.MAIL_STREAM, subject, after + 1, n)
    out = []
    for msg in got:
        headers = dict(msg.headers or {})
        stored = natscompat.stored_msg(
            link.nc,
            subject=headers.get(p.Header.NATS_SUBJECT, subject),
            data=msg.data or b"",
            headers=headers,
        )
        out.append(Message(stored, None))
    return out


async def _scan(
    link: Link, address: str, prio: p.Priority, after: int, size: int = _BATCH
) -> AsyncGenerator[Message, None]:
    """Every stored message at ``prio`` above ``after``, a batch of at most ``size`` per
    round trip (a caller that needs only a few asks for only a few)."""
    size = max(1, min(size, _BATCH))
    while True:
        run = await _stored_run(link, address, prio, after, size)
        for m in run:
            yield m
        if len(run) < size:
            return
        after = run[-1].seq


async def query(
    link: Link,
    address: str,
    *,
    tags: Iterable[str] | None = None,
    key: str | None = None,
    since: datetime | float | None = None,
    priority: p.Priority | str | int | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[Message]:
    """Waiting messages of ``address`` that carry every tag in ``tags``, the keep-latest
    ``key``, were sent at or after ``since``, are at ``priority`` (any if None) and have a
    stream sequence above ``after``."""
    want_tags, want_key = _checked(tags, key)
    prios = p.PRIORITIES if priority is None else (check_priority(priority),)
    since_at = _since(since)
    limit = check_count(limit, what="limit", minimum=1, maximum=MAX_QUERY_LIMIT)
    after = check_count(after, what="after", minimum=0, maximum=2**63 - 1)
    out: list[Message] = []
    with boundary():
        unfiltered = want_key is None and not want_tags and since_at is None
        for prio in prios:
            if len(out) >= limit:
                break
            size = limit - len(out) if unfiltered else _BATCH
            async with contextlib.aclosing(_scan(link, address, prio, after, size)) as found:
                async for m in found:
                    if want_key is not None and m.replace_key != want_key:
                        continue
                    if want_tags and not set(want_tags) <= set(m.tags):
                        continue
                    if since_at is not None and (m.sent_at is None or m.sent_at < since_at):
                        continue
                    out.append(m)
                    if len(out) >= limit:
                        break
            if len(out) >= limit:
                break
    return out


async def last_seq(link: Link, address: str) -> int:
    """The highest stream sequence of mail waiting in ``address`` (0 if none): a reader that
    wants only mail stored from now on starts after it."""
    with boundary():
        if link.agent is not None:
            return await _agent_views.last_seq(link, address)
        return await mailscan.last_seq(link.js, address)


async def delete(link: Link, address: str, ref: int | str | Message) -> None:
    """Remove one waiting message of ``address``: by stream sequence (``msg.seq``), by
    Mailslot id (``msg.id``) or the message itself. The stored subject is checked first, so a
    sequence that belongs to another mailbox is :class:`MessageNotFound` and stays."""
    if isinstance(ref, Message):
        ref = ref.seq
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise InvalidInput(f"a message is named by its seq (int) or id (str), not {type(ref).__name__}")
    with boundary():
        seq = await _find_seq(link, address, ref)
        try:
            # Deleted on purpose, unread: the server overwrites its bytes (moves and takes don't).
            await natscompat.delete_msg(link.js, p.MAIL_STREAM, seq, erase=True)
        except jserr.NotFoundError as exc:
            raise MessageNotFound(f"message {ref} not found in mailbox {address}") from exc
        except jserr.APIError as exc:
            if p.jsapi.is_already_gone(exc):
                raise MessageNotFound(f"message {ref} not found in mailbox {address}") from exc
            raise


async def _find_seq(link: Link, address: str, ref: int | str) -> int:
    missing = MessageNotFound(f"message {ref} not found in mailbox {address}")
    if isinstance(ref, int):
        if ref < 1:
            raise missing
        try:
            raw = await link.js.get_msg(p.MAIL_STREAM, seq=ref, direct=True)
        except jserr.NotFoundError:
            raise missing from None
        if raw.subject not in {p.mail_subject(prio, address) for prio in p.PRIORITIES}:
            raise missing
        return ref
    for prio in p.PRIORITIES:
        async for m in _scan(link, address, prio, 0):
            if m.id == ref:
                return m.seq  # a return ends the scan: nothing is left open
    raise missing


async def supersede(link: Link, address: str, key: str, *, newer: int) -> int:
    """Delete the messages of ``address`` with keep-latest ``key`` stored before sequence
    ``newer``; returns how many went. Not atomic with the publish: a receiver may take the
    older one in between, which is then simply delivered first. The same scan and delete
    as the sidecar's for an agent's send (:func:`mailslot_broker.tenant_reads.delete_keyed`)."""
    with boundary():
        return await tenant_reads.delete_keyed(
            link.js, address, key, older=lambda _h, _seq: True, below=newer
        )


async def keep_latest(link: Link, sent: Iterable[tuple[str | None, Receipt]]) -> None:
    """After a send: for each message stored with a keep-latest key, remove the older ones.

    An agent credential may not delete mail, and its receipt's ``seq`` counts in its outbox,
    not the mail stream: the sidecar does it once the message has moved into the mailbox,
    and removes only older mail with the key that this agent sent (never another sender's,
    whose ``Mailslot-From`` the sidecar cannot check; ``mview.<address>`` op ``supersede``)."""
    for key, rec in sent:
        if key and not rec.duplicate:
            if link.agent is not None:
                await _agent_views.supersede(link, rec.to, key, outbox_seq=rec.seq, msg_id=rec.id)
            else:
                await supersede(link, rec.to, key, newer=rec.seq)


async def send_many_keeping_latest(
    link: Link, messages: Iterable[Mapping[str, Any]], *, window: int
) -> list[Receipt]:
    """``send_many``: the pipelined publish, then the keep-latest removals of its keyed items
    (the items are read twice, so an iterator is listed first)."""
    plain = isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable)
    items = messages if plain else list(messages)
    receipts = await publish_many(link, items, window=window)
    if isinstance(items, list):
        await keep_latest(link, [(m.get("replace_key"), r) for m, r in zip(items, receipts, strict=True)])
    return receipts


__all__ = [
    "MAX_QUERY_LIMIT",
    "delete",
    "keep_latest",
    "last_seq",
    "query",
    "send_many_keeping_latest",
    "supersede",
]
