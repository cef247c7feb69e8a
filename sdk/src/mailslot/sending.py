"""Publishing prepared mail: retried through leader elections and outages, or pipelined."""

from __future__ import annotations

import asyncio
import collections
import inspect
import random
import time
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

import nats.errors as nerr
from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from nats.js import errors as jserr
from nats.js.api import PubAck
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from . import signing, tracing
from ._boundary import boundary
from ._boundary import count as check_count
from .errors import Disconnected, InvalidInput
from .link import Link
from .message import Receipt
from .outgoing import Outgoing, prepare

#: The keys a ``send_many`` item may have (``prepare``'s arguments; ``to`` and ``payload`` too).
SEND_MANY_KEYS = frozenset(inspect.signature(prepare).parameters) - {"max_payload"}
#: Most acks ``send_many`` keeps outstanding.
_MAX_WINDOW = 65536
#: ``send_many``'s default window: nats-py's ``publish_async_max_pending``, which bounds the
#: publishes in flight anyway. Measured: 512 cost ~15 us more CPU a message and some throughput.
DEFAULT_SEND_WINDOW = 4000

#: Errors a publish may hit while a stream leader is being elected: retried with the same
#: message id, so the server drops the duplicate if the first attempt did land.
_TRANSIENT = (nerr.NoRespondersError, jserr.NoStreamResponseError, nerr.TimeoutError)
#: ... and while the connection is being re-established (a request in flight when it dropped).
_RETRIED = (*_TRANSIENT, Disconnected)


def receipt(out: Outgoing, ack: PubAck) -> Receipt:
    """What the server confirmed for one prepared message: its sequence in the stream that
    stored it (the outbox for an agent credential, :class:`Receipt`)."""
    return Receipt(
        id=out.id,
        to=out.to,
        priority=out.priority,
        seq=ack.seq,
        duplicate=bool(ack.duplicate),
        scheduled=out.scheduled,
        stream=ack.stream or p.MAIL_STREAM,
    )


async def _publish_once(link: Link, subject: str, out: Outgoing) -> Receipt:
    """One attempt. Mailslot's own headers (``WireHeaders``) on a connected link take
    ``natscompat.jetstream_publish``; anything else nats-py's ``js.publish``, which also
    waits out an outage (``Link``)."""
    if type(out.headers) is natscompat.WireHeaders:
        guard = link.guard
        if guard is not None:
            guard.check_publish(subject)  # what the wrapped publish checks first
        ack = await natscompat.jetstream_publish(
            link.nc, subject, out.data, out.headers, timeout=5.0, track=guard.track if guard else None
        )
        if ack is not None:
            return receipt(out, ack)
    return receipt(out, await link.js.publish(subject, out.data, headers=out.headers, timeout=5.0))


async def publish(link: Link, out: Outgoing) -> Receipt:
    """Store one prepared message; retried (same message id) through a leader election for
    up to ``publish_retry_for`` seconds, and through an outage of up to ``outage_timeout``.
    Traced as one send span (:mod:`mailslot.tracing`) whatever the retries."""
    link.check_open()
    signing.seal(link, out)
    span = tracing.start_send(out, max_payload=link.mail_max_payload)
    if span is None:
        return await _publish(link, out)
    try:
        rec = await _publish(link, out)
    except BaseException as exc:
        tracing.end(span, exc)
        raise
    tracing.sent(span, rec)
    return rec


def subject_of(link: Link, out: Outgoing) -> str:
    """Where ``out`` is published: its mailbox subject, or for an agent credential the
    outbox (``mout.<p>.<to>``), which the sidecar moves to the mailbox: the mail stream
    takes ``Nats-Rollup`` headers, the outbox refuses them (``protocol.agent_writes``). A
    delayed message keeps its schedule subject (refused to agent credentials)."""
    if link.agent is None or out.scheduled:
        return out.subject
    return p.agent_writes.outbox_subject(out.subject)


async def _publish(link: Link, out: Outgoing) -> Receipt:
    subject = subject_of(link, out)
    with boundary():
        started = time.monotonic()
        try:
            # Fast path: building a tenacity retrier costs about a third of a send's CPU
            # (see bench/), so it is only built once a first attempt hit a transient error.
            # While the connection is down the request waits for it (up to outage_timeout).
            return await _publish_once(link, subject, out)
        except _RETRIED as exc:
            if time.monotonic() - started >= link.publish_retry_for or link.outage_exceeded():
                _raise_publish_error(link, exc)
            if not isinstance(exc, Disconnected):
                await asyncio.sleep(min(2.0, 0.1 + random.uniform(0, 1)))  # tenacity's 1st wait
            backoff = wait_exponential_jitter(multiplier=0.1, max=2.0)

            def wait(state: RetryCallState) -> float:
                # A dropped connection needs no backoff: the next attempt waits for it.
                failed = state.outcome.exception() if state.outcome is not None else None
                return 0.0 if isinstance(failed, Disconnected) else backoff(state)

            for_long = stop_after_delay(max(0.0, link.publish_retry_for - (time.monotonic() - started)))

            def stop(state: RetryCallState) -> bool:
                # An outage is not a leader election: stop once the connection has been
                # down longer than outage_timeout.
                return for_long(state) or link.outage_exceeded()

            try:
                async for attempt in AsyncRetrying(
                    retry=retry_if_exception_type(_RETRIED),
                    stop=stop,
                    wait=wait,
                    reraise=True,
                ):
                    with attempt:
                        return await _publish_once(link, subject, out)
            except _RETRIED as exc2:
                _raise_publish_error(link, exc2)
    raise AssertionError("unreachable: the retrier returns or raises")


def _raise_publish_error(link: Link, exc: BaseException) -> NoReturn:
    """What a publish that ran out of retries raises: Disconnected while the connection
    is down (a dead broker is not a slow one), else the last error as it was."""
    down = link.outage()
    if isinstance(exc, Disconnected) or down is None:
        raise exc
    raise link.disconnected_error(down) from exc


def prepare_many(link: Link, messages: Iterable[Mapping[str, Any]]) -> list[Outgoing]:
    """Every ``send_many`` item validated and built, before anything is sent."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
        raise InvalidInput(f"send_many takes an iterable of mappings, not {type(messages).__name__}")
    name, max_payload = link.name, link.mail_max_payload
    prepared = []
    for i, item in enumerate(messages):
        if not isinstance(item, Mapping):
            raise InvalidInput(f"send_many item {i} must be a mapping, not {type(item).__name__}")
        try:
            to, payload = item["to"], item["payload"]
        except KeyError as exc:
            raise InvalidInput(f"send_many item {i} needs 'to' and 'payload'") from exc
        if len(item) == 2:  # the common bulk item: no copy, no key check (a third of the CPU)
            prepared.append(prepare(to, payload, sender=name, max_payload=max_payload))
            continue
        kw = {k: v for k, v in item.items() if k != "to" and k != "payload"}
        if not kw.keys() <= SEND_MANY_KEYS:
            unknown = sorted(str(k) for k in kw if k not in SEND_MANY_KEYS)
            raise InvalidInput(
                f"send_many item {i} has unknown keys {unknown}; allowed are "
                + ", ".join(sorted(SEND_MANY_KEYS))
            )
        kw.setdefault("sender", name)
        prepared.append(prepare(to, payload, max_payload=max_payload, **kw))
    return prepared


async def publish_many(link: Link, messages: Iterable[Mapping[str, Any]], *, window: int) -> list[Receipt]:
    """Pipelined publish with at most ``window`` acks outstanding; one that failed is
    published again on its own (same id, so stored once)."""
    link.check_open()
    window = check_count(window, what="window", minimum=1, maximum=_MAX_WINDOW)
    prepared = prepare_many(link, messages)
    receipts: list[Receipt] = []
    # A sliding window (oldest ack awaited once ``window`` are outstanding) rather than
    # chunks: waiting for a whole chunk to drain left the pipe empty (see bench/).
    pending: collections.deque[tuple[Outgoing, asyncio.Future[Any], Any]] = collections.deque()

    async def settle() -> None:
        o, fut, span = pending.popleft()
        try:
            ack = await fut
        except Exception as exc:
            tracing.end(span, exc)
            receipts.append(await publish(link, o))  # retried with the same id (and its own span)
            return
        receipts.append(receipt(o, ack))
        if span is not None:
            tracing.sent(span, receipts[-1])

    with boundary():
        try:
            for o in prepared:
                if pending and len(pending) >= window:
                    await settle()
                if not link.nc.is_connected:
                    # Nothing is pipelined into a dead connection: wait (outage_timeout).
                    await link.until_connected()
                signing.seal(link, o)
                span = tracing.start_send(o, max_payload=link.mail_max_payload)
                fut = await link.js.publish_async(subject_of(link, o), o.data, headers=o.headers)
                pending.append((o, fut, span))
            if pending:
                # Acks come back in publish order: waiting for the newest first wakes this
                # task once, not once per ack (a loop turn each: ~10 us a message, see bench/).
                await asyncio.wait([pending[-1][1]])
            while pending:
                await settle()
        finally:
            for _, fut, span in pending:  # only on error: nobody will await these any more
                fut.cancel()
                tracing.end(span)
    return receipts


__all__ = ["DEFAULT_SEND_WINDOW", "SEND_MANY_KEYS", "prepare_many", "publish", "publish_many", "receipt"]
