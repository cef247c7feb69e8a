"""KV internals: a compare-and-set with a per-message TTL, a handle without a lookup, and the
ordered consumer behind a watcher (nats-py replaces it and never deletes the old one).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue


async def kv_update(
    kv: KeyValue, key: str, value: bytes, *, last: int | None, msg_ttl: float | None = None
) -> int:
    """Write ``key`` only if its latest revision is ``last`` (0 or None: only if absent), with a
    per-message TTL; returns the new revision. Raises ``KeyWrongLastSequenceError`` when
    somebody wrote it since. (``KeyValue.update`` has no ``msg_ttl``.)"""
    return int(await kv._update(key, value, last=last, msg_ttl=msg_ttl))


def kv_handle(js: JetStreamContext, *, bucket: str, stream: str, prefix: str) -> KeyValue:
    """A KV handle on ``bucket`` (its entries under ``prefix``, stored in ``stream``) without
    ``js.key_value()``'s ``STREAM.INFO`` lookup, a round trip per call. nats-py's
    ``KeyValue`` constructor is not documented: the bucket must have ``allow_direct`` (reads
    are direct gets) and no mirror."""
    from nats.js.kv import KeyValue

    return KeyValue(name=bucket, stream=stream, pre=prefix, js=js, direct=True)


def watcher_consumer(watcher: KeyValue.KeyWatcher) -> tuple[str, str] | None:
    """(stream, consumer) currently behind a KV watcher; it changes when nats-py replaces its
    ordered consumer."""
    sub = getattr(watcher, "_sub", None)
    stream, name = getattr(sub, "_stream", None), getattr(sub, "_consumer", None)
    if not stream or not name:
        return None
    return stream, name


def on_consumer_replaced(
    watcher: KeyValue.KeyWatcher, callback: Callable[[str, str], Awaitable[None]]
) -> None:
    """Call ``callback(stream, old_consumer)`` each time nats-py replaces the ordered consumer
    behind ``watcher``. nats-py does that after two missed idle heartbeats or a sequence gap and
    never deletes the consumer it abandons, so the server keeps it until its inactive
    threshold: on a loaded machine a watcher that is otherwise idle leaves one behind now and
    then. The replacement is made in a background task; :func:`replacements_settled` waits
    for the ones in flight."""
    psub: Any = watcher._sub
    jsi = psub._sub._jsi
    recreate = jsi.recreate_consumer
    inflight = _REPLACING.setdefault(watcher, set())

    def recreate_then_report() -> Awaitable[None]:
        # Called when nats-py makes its background task, so the replacement is known to be in
        # flight before the task first runs.
        old = psub._consumer
        done = asyncio.get_running_loop().create_future()
        inflight.add(done)

        async def run() -> None:
            try:
                await recreate()
                if old and psub._consumer != old:
                    await callback(psub._stream, old)
            finally:
                inflight.discard(done)
                done.set_result(None)

        return run()

    jsi.recreate_consumer = recreate_then_report


async def replacements_settled(watcher: KeyValue.KeyWatcher, *, timeout: float) -> None:
    """Wait (at most ``timeout`` s) until no replacement of ``watcher``'s consumer is in
    flight, so that :func:`watcher_consumer` names the consumer that stays. A watch stopped
    while nats-py was still making the replacement deleted the consumer it was leaving, and
    the replacement appeared after it, subscribed by nobody, until its inactive threshold."""
    pending = list(_REPLACING.get(watcher, ()))
    if pending:
        await asyncio.wait(pending, timeout=timeout)


#: Watchers -> replacements of their consumer in flight (see :func:`on_consumer_replaced`).
_REPLACING: weakref.WeakKeyDictionary[Any, set[asyncio.Future[None]]] = weakref.WeakKeyDictionary()
