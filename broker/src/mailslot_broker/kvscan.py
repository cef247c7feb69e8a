"""Consumer-free reads of a KV bucket: which keys it holds and what their current values are.

Why this module exists: nats-py's ``KeyValue.keys()``, ``watchall()`` and ``history()`` each
create an ephemeral ordered push consumer, and ``KeyWatcher.stop()`` only unsubscribes from it.
The server keeps such a consumer until its ``inactive_threshold`` runs out (nats-py asks for
300 s). Called on a timer (the sidecar's metrics every ``metrics_interval``, its sweeps, every
``agents()`` listing in the SDK), that kept dozens of idle consumers per bucket alive on an idle
broker (measured: ~12 new per minute on each of ``KV_MAILSLOT_AGENTS`` and
``KV_MAILSLOT_MAILBOXES`` from the metrics loop alone). They count against the account's
``max_consumers`` and cost server memory. Nothing here creates a consumer:

* :func:`read_bucket` sends one ``DIRECT.GET`` with ``multi_last`` (ADR-31, nats-server 2.11+)
  and gets the last message of every key, computed under the stream's read lock: one
  consistent snapshot in one round trip. The server answers at most 1024 subjects per request
  (``413 Too Many Results``); past that, the keys are listed with :func:`key_counts` and read
  in chunks of literal subjects. Each key is then current, but the whole is no longer one
  snapshot (the same as calling ``kv.get`` per key).
* A bucket without ``allow_direct`` has no DIRECT.GET responder (``503``), so it is read key
  by key with ``STREAM.MSG.GET``.
* :func:`key_counts` is ``STREAM.INFO`` with ``subjects_filter`` (paged): the keys with the
  number of messages each has stored, including keys whose last message is a delete or purge
  marker.

Where a live watch is really needed (the registry's ``watch_agents()``, the reaper), open it
with :func:`watch` and end it with :func:`stop_watch`. :func:`watch` sets a short
``inactive_threshold``, so a consumer orphaned by a crashed client or by nats-py's own
ordered-consumer reset goes away within seconds. :func:`stop_watch` deletes the consumer
instead of leaving it to time out.

The subject layout (``KV_<bucket>``, ``$KV.<bucket>.<key>``) comes from
:mod:`mailslot_broker.protocol`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.kv import KV_DEL, KV_MARKER_REASON, KV_OP, KV_PURGE, KeyValue

from . import natscompat
from . import protocol as p
from .mailscan import TooManyResults, direct_batch

#: The most subjects nats-server returns for one ``multi_last`` request (more gives ``413``).
MULTI_LAST_LIMIT = 1024
#: Literal keys per ``multi_last`` request once a bucket holds more than ``MULTI_LAST_LIMIT``.
CHUNK = 256
#: ``inactive_threshold`` (seconds) of consumers opened by :func:`watch`. While the watcher is
#: subscribed the server never removes its consumer; this bounds how long one outlives a client
#: that vanished, or a consumer nats-py replaced after missed heartbeats.
WATCH_INACTIVE_THRESHOLD = 15.0

#: How long :func:`stop_watch` waits for a replacement of the consumer that nats-py is still
#: making (one CONSUMER.CREATE round trip); past it, that one goes by its inactive threshold.
REPLACEMENT_WAIT = 2.0

_TIMESTAMP = "Nats-Time-Stamp"
_STATUS = "Status"
_DESCRIPTION = "Description"


@dataclass(frozen=True)
class KvItem:
    """The last message stored for one key."""

    key: str
    value: bytes
    revision: int
    created: datetime | None
    #: ``None`` for a value; ``"DEL"`` or ``"PURGE"`` for a delete or purge, including the
    #: markers the server writes itself when a key's TTL runs out (``Nats-Marker-Reason``).
    operation: str | None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def live(self) -> bool:
        """A value, not a delete/purge marker."""
        return self.operation is None


def _operation(headers: Mapping[str, str]) -> str | None:
    op = headers.get(KV_OP)
    if op:
        return op
    reason = headers.get(KV_MARKER_REASON)
    if reason is None:
        return None
    # nats-server 2.11+ markers: "MaxAge" and "Purge" purge the key, "Remove" deletes it. An
    # unknown future reason is still a marker, not a value.
    return KV_DEL if reason == "Remove" else KV_PURGE


def _parse_time(value: str | None) -> datetime | None:
    """RFC 3339 with nanoseconds (``2026-01-02T03:04:05.123456789Z``) to an aware datetime."""
    if not value:
        return None
    s = value.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    head, sep, tail = s.partition(".")
    if sep:
        digits = ""
        i = 0
        while i < len(tail) and tail[i].isdigit():
            digits += tail[i]
            i += 1
        s = f"{head}.{(digits + '000000')[:6]}{tail[i:]}"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _item(bucket: str, subject: str, data: bytes | None, headers: Mapping[str, str]) -> KvItem | None:
    prefix = p.kv_subject(bucket, "")
    if not subject.startswith(prefix):
        return None
    seq = headers.get(p.Header.NATS_SEQUENCE)
    return KvItem(
        key=subject[len(prefix) :],
        value=data or b"",
        revision=int(seq) if seq else 0,
        created=_parse_time(headers.get(_TIMESTAMP)),
        operation=_operation(headers),
        headers=dict(headers),
    )


async def _multi_last(
    js: JetStreamContext, stream: str, filters: list[str], timeout: float
) -> list[Msg] | None:
    """The last message on each filter, in one batched direct get (:mod:`.mailscan`)."""
    return await direct_batch(js, stream, {"multi_last": filters}, timeout=timeout)


async def key_counts(
    js: JetStreamContext, bucket: str, keys: str = ">", *, timeout: float = 5.0
) -> dict[str, int]:
    """Key -> number of messages stored for it, from ``STREAM.INFO`` (no consumer, no values).

    A key whose last message is a delete or purge marker is listed too; use
    :func:`read_bucket` or :func:`live_keys` for the keys that hold a value. Pages through
    buckets with more keys than the server returns at once (100k).
    """
    stream = p.kv_stream(bucket)
    prefix = p.kv_subject(bucket, "")
    out: dict[str, int] = {}
    offset = 0
    while True:
        req: dict[str, Any] = {"subjects_filter": p.kv_subject(bucket, keys)}
        if offset:
            req["offset"] = offset
        try:
            resp = await natscompat.api_request(
                js, f"STREAM.INFO.{stream}", json.dumps(req).encode(), timeout=timeout
            )
        except jserr.NotFoundError as exc:
            raise jserr.BucketNotFoundError from exc
        subjects: dict[str, int] = (resp.get("state") or {}).get("subjects") or {}
        for subject, n in subjects.items():
            if subject.startswith(prefix):
                out[subject[len(prefix) :]] = int(n)
        offset += len(subjects)
        total = int(resp.get("total") or 0)
        if not subjects or offset >= total:
            return out


async def _read_literal(js: JetStreamContext, bucket: str, keys: list[str], timeout: float) -> list[KvItem]:
    stream = p.kv_stream(bucket)
    items: list[KvItem] = []
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        msgs = await _multi_last(js, stream, [p.kv_subject(bucket, k) for k in chunk], timeout)
        if msgs is None:
            return await _read_one_by_one(js, bucket, keys)
        items += [it for m in msgs if (it := _item(bucket, _subject(m), m.data, m.headers or {}))]
    return items


async def _read_one_by_one(js: JetStreamContext, bucket: str, keys: list[str]) -> list[KvItem]:
    """``STREAM.MSG.GET`` per key, for a bucket without ``allow_direct``."""
    stream = p.kv_stream(bucket)
    items: list[KvItem] = []
    for key in keys:
        try:
            raw = await js.get_msg(stream, subject=p.kv_subject(bucket, key))
        except jserr.NotFoundError:
            continue
        headers = dict(raw.headers or {})
        if raw.seq is not None:
            headers.setdefault(p.Header.NATS_SEQUENCE, str(raw.seq))
        item = _item(bucket, raw.subject or "", raw.data, headers)
        if item is not None:
            if item.created is None and raw.time is not None:
                item = KvItem(item.key, item.value, item.revision, raw.time, item.operation, item.headers)
            items.append(item)
    return items


def _subject(msg: Msg) -> str:
    return (msg.headers or {}).get(p.Header.NATS_SUBJECT) or ""


def _keep(items: Iterable[KvItem], deleted: bool) -> dict[str, KvItem]:
    return {it.key: it for it in items if deleted or it.live}


async def read_bucket(
    js: JetStreamContext,
    bucket: str,
    keys: str = ">",
    *,
    deleted: bool = False,
    timeout: float = 5.0,
) -> dict[str, KvItem]:
    """Key -> current entry for every key matching ``keys`` (a KV key pattern, ``>`` = all).

    Keys whose last message is a delete or purge marker are left out unless ``deleted``.
    Raises :class:`nats.js.errors.BucketNotFoundError` if the bucket does not exist.
    """
    stream = p.kv_stream(bucket)
    try:
        msgs = await _multi_last(js, stream, [p.kv_subject(bucket, keys)], timeout)
    except TooManyResults:
        items = await _read_literal(js, bucket, sorted(await key_counts(js, bucket, keys)), timeout)
        return _keep(items, deleted)
    if msgs is None:  # no direct get: the bucket is missing or has allow_direct off
        names = sorted(await key_counts(js, bucket, keys))  # raises BucketNotFoundError
        return _keep(await _read_one_by_one(js, bucket, names), deleted)
    return _keep((it for m in msgs if (it := _item(bucket, _subject(m), m.data, m.headers or {}))), deleted)


async def read_keys(
    js: JetStreamContext,
    bucket: str,
    keys: Iterable[str],
    *,
    deleted: bool = False,
    timeout: float = 5.0,
) -> dict[str, KvItem]:
    """Key -> current entry for the given literal keys (missing ones are left out), batched
    ``CHUNK`` keys per request."""
    names = sorted(set(keys))
    if not names:
        return {}
    return _keep(await _read_literal(js, bucket, names, timeout), deleted)


async def live_keys(js: JetStreamContext, bucket: str, keys: str = ">", *, timeout: float = 5.0) -> list[str]:
    """The keys holding a value (what ``KeyValue.keys()`` returns), sorted; ``[]`` when empty
    (``KeyValue.keys()`` raises ``NoKeysError`` instead)."""
    return sorted(await read_bucket(js, bucket, keys, timeout=timeout))


# -- watchers that clean up after themselves ---------------------------------------------------


async def watch(
    js: JetStreamContext,
    kv: KeyValue,
    keys: str = ">",
    *,
    inactive_threshold: float = WATCH_INACTIVE_THRESHOLD,
    **kwargs: Any,
) -> KeyValue.KeyWatcher:
    """``kv.watch(keys, ...)`` with a short ``inactive_threshold`` (nats-py's default is 300 s)
    whose abandoned consumers are deleted when nats-py replaces them. End it with
    :func:`stop_watch`."""
    watcher = await kv.watch(keys, inactive_threshold=inactive_threshold, **kwargs)

    async def delete_abandoned(stream: str, consumer: str) -> None:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, consumer)

    natscompat.on_consumer_replaced(watcher, delete_abandoned)
    return watcher


async def stop_watch(js: JetStreamContext, watcher: KeyValue.KeyWatcher | None) -> None:
    """Stop a nats-py KV watcher *and* delete its consumer. ``KeyWatcher.stop()`` alone only
    unsubscribes, and the server keeps the consumer until its inactive threshold. Safe to call
    on a stopped watcher; never raises. While disconnected it does not wait for the server: the
    consumer then goes by its inactive threshold (short if opened with :func:`watch`)."""
    if watcher is None:
        return
    with contextlib.suppress(Exception):
        await watcher.stop()
    await natscompat.replacements_settled(watcher, timeout=REPLACEMENT_WAIT)
    where = natscompat.watcher_consumer(watcher)
    if where is None or not natscompat.js_connection(js).is_connected:
        return
    with contextlib.suppress(Exception):
        await js.delete_consumer(*where)


__all__ = [
    "CHUNK",
    "MULTI_LAST_LIMIT",
    "WATCH_INACTIVE_THRESHOLD",
    "KvItem",
    "key_counts",
    "live_keys",
    "read_bucket",
    "read_keys",
    "stop_watch",
    "watch",
]
