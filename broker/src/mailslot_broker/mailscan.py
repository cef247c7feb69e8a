"""Batched direct gets (NATS 2.11+): one round trip for many stored messages instead of one
each. :func:`direct_batch` sends any batched DIRECT.GET request and collects the answer (the
messages with their ``Nats-Subject``, ``Nats-Sequence`` and ``Nats-Time-Stamp`` headers, then
an end-of-batch status); :func:`next_batch` reads a run on one subject (``next_by_subj``), the
KV scans (:mod:`.kvscan`) read the last value of many keys (``multi_last``)."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import nats.errors as nerr
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as jserr

from . import natscompat
from . import protocol as p
from .errors import BrokerError

_STATUS = "Status"
_DESCRIPTION = "Description"


class TooManyResults(BrokerError):
    """The server refused a batch that would match too many subjects (413); callers read
    fewer subjects at a time (kvscan halves its batch)."""


async def direct_batch(
    js: JetStreamContext,
    stream: str,
    request: dict[str, Any],
    *,
    timeout: float = 5.0,
    limit: int | None = None,
) -> list[Msg] | None:
    """The messages one batched DIRECT.GET ``request`` answers (up to ``limit``: the end-of-
    batch marker is then not waited for); ``[]`` when nothing matched, ``None`` when the stream
    has no DIRECT.GET responder (allow_direct off, or no such stream). A refused request
    subject fails at once, not after ``timeout``."""
    nc = natscompat.js_connection(js)
    subject = f"{natscompat.api_prefix(js)}.DIRECT.GET.{stream}"
    return await batch_request(nc, subject, request, timeout=timeout, limit=limit)


async def batch_request(
    nc: Any,
    subject: str,
    request: dict[str, Any],
    *,
    timeout: float = 5.0,
    limit: int | None = None,
) -> list[Msg] | None:
    """Send ``request`` (JSON) to ``subject`` and collect an answer in the form of a batched
    direct get: messages, then a ``Status`` of 204/404 (end), 413 (:class:`TooManyResults`),
    503 (no responder: ``None``) or another code (an ``APIError``). Also how the sidecar
    answers an agent's own-mailbox reads (:mod:`.protocol.views`)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    out: list[Msg] = []
    try:
        before = nc.last_error
        await nc.publish(subject, json.dumps(request).encode(), reply=inbox)
        msg = await _first_reply(nc, sub, subject, before, timeout)
        while True:
            status = (msg.headers or {}).get(_STATUS)
            if status in ("204", "404"):  # end of batch / nothing there
                return out
            if status == "413":
                raise TooManyResults
            if status == "503":
                return None
            if status:
                raise jserr.APIError(code=int(status), description=(msg.headers or {}).get(_DESCRIPTION))
            out.append(msg)
            if limit is not None and len(out) >= limit:
                return out
            msg = await sub.next_msg(timeout=timeout)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _first_reply(nc: Any, sub: Any, subject: str, before: Exception | None, timeout: float) -> Msg:
    """The first reply; fails at once (not after ``timeout``) when the server refuses the
    request's subject: a denied publish only shows as an asynchronous ``-ERR``, which nats-py
    keeps as ``last_error``, and a plain request would wait for a reply that never comes."""
    deadline = time.monotonic() + timeout
    step = 0.05
    while True:
        left = deadline - time.monotonic()
        try:
            return await sub.next_msg(timeout=max(0.001, min(step, left)))
        except nerr.TimeoutError:
            err = nc.last_error
            if err is not None and err is not before and _refuses(err, subject):
                raise err from None
            if left <= step:
                raise
        step = min(step * 2, 1.0)


def _refuses(err: Exception, subject: str) -> bool:
    text = str(err).lower()
    return "permissions violation" in text and f'"{subject.lower()}"' in text


async def next_batch(
    js: JetStreamContext, stream: str, subject: str, seq: int, batch: int, *, timeout: float = 5.0
) -> list[Msg]:
    """Up to ``batch`` messages on ``subject`` at or after ``seq`` (none: ``[]``)."""
    request = {"seq": max(1, seq), "next_by_subj": subject, "batch": batch}
    got = await direct_batch(js, stream, request, timeout=timeout, limit=batch)
    if got is None:
        raise jserr.APIError(code=503, description=f"no DIRECT.GET responder for stream {stream}")
    return got


async def last_seq(js: JetStreamContext, address: str) -> int:
    """The highest stream sequence of mail waiting in ``address`` (0 if none): one
    last-by-subject direct get per priority."""
    last = 0
    for prio in p.PRIORITIES:
        try:
            raw = await js.get_msg(p.MAIL_STREAM, subject=p.mail_subject(prio, address), direct=True)
        except jserr.NotFoundError:
            continue
        last = max(last, raw.seq or 0)
    return last


__all__ = ["TooManyResults", "batch_request", "direct_batch", "last_seq", "next_batch"]
