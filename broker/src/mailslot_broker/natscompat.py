"""Every use of nats-py internals, in one place.

nats-py has no public API for some things Mailslot needs: a KV compare-and-set that carries
a per-message TTL, the request/reply mux (to fail a request the server refused at once), the
connection behind a message, the server's INFO, reconnect options changed after connecting,
the layout of a JetStream ack reply subject, a message delete without secure erase, the
JetStream API request behind nats-py's methods and its in-flight ``publish_async`` futures. They
live here, and only here, so that a nats-py upgrade breaks one module;
``tests/broker/test_natscompat.py`` checks each against a real server and fails loudly when
nats-py changes them. The nats-py pin in ``pyproject.toml`` is the range that test covers
(:data:`TESTED_NATS_PY`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from nats.aio.client import _validate_subject
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import errors as jserr
from nats.protocol.command import hpub_cmd

from . import protocol as p

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.subscription import Subscription
    from nats.js import JetStreamContext
    from nats.js.kv import KeyValue

_log = logging.getLogger("mailslot.nats")

#: The nats-py minor version(s) this module was checked against.
TESTED_NATS_PY = "2.16"


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


#: The last prefix decoded by :func:`response_prefix` (nats-py builds it once per connection).
_decoded_prefix: tuple[object, str] | None = None


def response_prefix(nc: Client) -> str | None:
    """The subject prefix of the connection's request/reply mux (``_INBOX.<nuid>.``), None
    before its first request. Asked on every publish with a reply, so the decoded string is
    kept for the bytearray it came from (decoding it each time was a tenth of the permission
    guard's cost on a pipelined send)."""
    global _decoded_prefix
    prefix = nc._resp_sub_prefix
    if not prefix:
        return None
    last = _decoded_prefix
    if last is not None and last[0] is prefix:
        return last[1]
    text = bytes(prefix).decode()
    _decoded_prefix = (prefix, text)
    return text


class WireHeaders(dict[str, str]):
    """Headers built only from names and values the protocol validated
    (``protocol.validate_header_name`` / ``validate_header_value``: tokens, single-line,
    trimmed), so :func:`publish_wire` can write them in one join. nats-py checks, trims and
    escapes each header in Python: about 20 us for a mail message's seven, as much as the
    rest of a pipelined send (see bench/)."""

    __slots__ = ()


def encode_headers(headers: Mapping[str, str]) -> bytes | None:
    """The header block nats-py writes for ``headers`` (``NATS/1.0`` line, one line a header,
    a blank line), or None if a value holds a CR or LF (nats-py replaces them by spaces: left
    to its own path, so no value can end a line early)."""
    block = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
    n = len(headers)
    if block.count("\n") != n or block.count("\r") != n:
        return None
    return f"NATS/1.0\r\n{block}\r\n".encode()


async def publish_wire(
    nc: Client,
    subject: str,
    payload: bytes,
    reply: str,
    headers: WireHeaders,
    publish: Callable[..., Awaitable[None]],
) -> None:
    """``nc.publish`` for :class:`WireHeaders`: the same frame, counters and flush, the header
    block built by :func:`encode_headers`. Anything out of the common case (closed, draining
    or reconnecting connection, oversize payload, a value with a line break) goes to
    ``publish``, nats-py's own, which raises or buffers as it always does."""
    hdr = encode_headers(headers)
    usual = subject and nc.is_connected and not nc.is_draining_pubs and len(payload) <= nc._max_payload
    if hdr is None or not usual:
        await publish(subject, payload, reply=reply, headers=headers)
        return
    if not nc._skip_subject_validation:
        _validate_subject(subject)
        if reply:
            _validate_subject(reply)
    nc.stats["out_msgs"] += 1
    nc.stats["out_bytes"] += len(payload)
    await nc._send_command(hpub_cmd(subject, reply, hdr, payload))
    queue = nc._flush_queue
    if queue is not None and queue.empty():
        await nc._flush_pending()


def _time_out(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(NatsTimeoutError())


async def jetstream_publish(
    nc: Client,
    subject: str,
    payload: bytes,
    headers: WireHeaders,
    *,
    timeout: float,
    track: Callable[[str, str], None] | None = None,
) -> dict[str, Any] | None:
    """``js.publish`` for :class:`WireHeaders`, as one coroutine: the request nats-py's
    ``request`` makes (a token under the connection's reply mux, its future in the reply
    map, failed by whatever fails those), the frame :func:`publish_wire` writes, one loop
    timer for the timeout instead of ``asyncio.wait_for``, and the ack read from its JSON.
    nats-py's path is five coroutines deep and built a ``PubAck`` through
    ``dataclasses.fields``: about a tenth of a send's CPU (bench/README.md). Raises what
    ``js.publish`` raises (``TimeoutError``, ``NoStreamResponseError``, ``APIError``).
    Returns None, having sent nothing, outside the usual case (no reply mux yet, not
    connected, draining, oversize, a value with a line break): the caller then uses
    ``js.publish``. ``track(token, subject)`` is told of the request before it is sent."""
    prefix = response_prefix(nc)
    if prefix is None or not subject or not nc.is_connected or nc.is_draining_pubs:
        return None
    if len(payload) > nc._max_payload:
        return None
    hdr = encode_headers(headers)
    if hdr is None:
        return None
    if not nc._skip_subject_validation:
        _validate_subject(subject)
    token = nc._nuid.next().decode()
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Msg] = loop.create_future()
    replies = nc._resp_map
    replies[token] = fut
    try:
        if track is not None:
            track(token, subject)
        nc.stats["out_msgs"] += 1
        nc.stats["out_bytes"] += len(payload)
        await nc._send_command(hpub_cmd(subject, prefix + token, hdr, payload))
        queue = nc._flush_queue
        if queue is not None and queue.empty():
            await nc._flush_pending()
        timer = loop.call_later(timeout, _time_out, fut)
        try:
            msg = await fut
        finally:
            timer.cancel()
    finally:
        replies.pop(token, None)
    if msg.headers and msg.headers.get("Status") == "503":
        raise jserr.NoStreamResponseError
    resp = json.loads(msg.data)
    if "error" in resp:
        raise jserr.APIError.from_error(resp["error"])
    return cast("dict[str, Any]", resp)


def pending_responses(nc: Client) -> Mapping[str, asyncio.Future[Any]]:
    """The futures of in-flight requests, keyed by the reply token after
    :func:`response_prefix` (the live dict: failing a future fails that request)."""
    return nc._resp_map


#: Per connection: subscription id -> the callback that gets its messages' subjects alone.
_SUBJECT_ONLY: weakref.WeakKeyDictionary[Client, dict[int, Callable[[str], None]]] = (
    weakref.WeakKeyDictionary()
)
_prune_at: weakref.WeakKeyDictionary[Client, int] = weakref.WeakKeyDictionary()


def deliver_subjects_only(sub: Subscription, on_subject: Callable[[str], None]) -> None:
    """From now on, hand each message of ``sub`` to ``on_subject`` as its subject alone,
    called from the connection's reader, instead of parsing it into a ``Msg`` for the
    subscription's callback. For bells: the stream's headers-only republish carries every
    header of the stored mail, which nats-py parses character by character, and a mailbox
    only reads the subject (measured: a receiver spent as long on the bells as on the mail
    they rang for; bench/README.md). ``on_subject`` must be quick and must not raise (it is
    logged). The subscription is forgotten once unsubscribed."""
    nc = sub._conn
    table = _SUBJECT_ONLY.get(nc)
    if table is None:
        table = _SUBJECT_ONLY[nc] = {}
        process_msg = nc._process_msg
        subs = nc._subs
        stats = nc.stats

        async def subjects_first(sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
            fn = table.get(sid)
            if fn is None:
                await process_msg(sid, subject, reply, data, headers)
                return
            if sid not in subs:  # unsubscribed: nats-py would drop it too
                del table[sid]
                return
            stats["in_msgs"] += 1
            stats["in_bytes"] += len(data)
            try:
                fn(subject.decode())
            except Exception:
                _log.exception("a subject-only subscription's callback failed")

        nc._process_msg = subjects_first
    if len(table) >= _prune_at.get(nc, 64):  # amortised: unsubscribed ones with no message since
        for sid in [sid for sid in table if sid not in nc._subs]:
            del table[sid]
        _prune_at[nc] = max(64, 2 * len(table))
    table[sub._id] = on_subject


def forget_subjects_only(sub: Subscription) -> None:
    """Drop ``sub``'s entry (and its callback's references) at once, after unsubscribing;
    without this it goes at the next message for it or the next registration's sweep."""
    table = _SUBJECT_ONLY.get(sub._conn)
    if table is not None:
        table.pop(sub._id, None)


def keep_reconnecting(nc: Client, *, wait: float) -> None:
    """From now on reconnect forever, ``wait`` seconds apart (options read at each attempt)."""
    for key in ("max_reconnect_attempts", "reconnect_time_wait"):
        if key not in nc.options:
            raise RuntimeError(f"nats-py has no connection option {key!r}")
    nc.options["max_reconnect_attempts"] = -1
    nc.options["reconnect_time_wait"] = wait


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


def js_connection(js: JetStreamContext) -> Client:
    """The connection behind a JetStream context (nats-py keeps it private)."""
    return js._nc


def api_prefix(js: JetStreamContext) -> str:
    """The JetStream API subject prefix of ``js`` (``$JS.API``, or a domain's)."""
    return str(js._prefix)


async def api_request(js: JetStreamContext, subject: str, body: bytes, *, timeout: float) -> dict[str, Any]:
    """One JetStream API request (``subject`` after :func:`api_prefix`) answered as a dict,
    for the requests nats-py has no method for (a filtered, paged STREAM.INFO). A refusal
    raises nats-py's ``APIError`` subclass for it."""
    resp: dict[str, Any] = await js._api_request(f"{api_prefix(js)}.{subject}", body, timeout=timeout)
    return resp


def pending_publishes(js: JetStreamContext) -> Mapping[str, asyncio.Future[Any]]:
    """The futures of ``publish_async`` calls not acknowledged yet, keyed by reply token (the
    live dict: failing a future fails that publish). Ask at use: nats-py replaces the dict
    when its first ``publish_async`` sets up the reply subscription."""
    return js._publish_async_futures


async def delete_msg(js: JetStreamContext, stream: str, seq: int, *, erase: bool = False) -> None:
    """``js.delete_msg`` without the secure erase nats-py always asks for (it has no option to
    leave it out; see :func:`~mailslot_broker.protocol.msg_delete_request` for what it costs).
    Errors are nats-py's own, as its ``_api_request`` raises them: ``ServiceUnavailableError``
    for no responders, ``APIError`` subclasses (``NotFoundError``, ...) for a refusal."""
    body = json.dumps(p.msg_delete_request(seq, erase=erase)).encode()
    try:
        msg = await js_connection(js).request(p.msg_delete_subject(stream), body, timeout=5.0)
    except NoRespondersError:
        raise jserr.ServiceUnavailableError from None
    resp = json.loads(msg.data)
    if "error" in resp:
        raise jserr.APIError.from_error(resp["error"])


def server_info(nc: Client) -> dict[str, Any]:
    """The INFO ``nc`` got from its server at its latest (re)connect, empty before the first;
    a copy. The INFO updates a server sends later are not kept by nats-py (only the servers
    they name, in ``nc.servers``)."""
    return dict(nc._server_info)


def msg_client(msg: Msg) -> Client:
    """The connection a message arrived on (to publish to its reply subject)."""
    return msg._client


def marker_msg(*, headers: dict[str, str]) -> Msg:
    """A :class:`nats.aio.msg.Msg` on no connection, for a queue's in-band marker."""
    return Msg(_client=cast(Any, None), subject="", headers=headers)


def stored_msg(nc: Client, *, subject: str, data: bytes, headers: dict[str, str] | None) -> Msg:
    """A :class:`nats.aio.msg.Msg` for a message read from a stream (no reply subject)."""
    return Msg(_client=nc, subject=subject, reply="", data=data, headers=headers)


@dataclass(frozen=True)
class AckReply:
    """What a JetStream delivery's reply subject says."""

    stream: str
    consumer: str
    delivered: int
    stream_seq: int
    consumer_seq: int


#: ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>``
_V1_TOKENS = 9
#: ``$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>``
#: (the server may append a random token)
_V2_TOKENS = 11


def parse_ack_reply(reply: str) -> AckReply:
    """Parse the reply subject of a JetStream delivery; ValueError if it is not one."""
    t = reply.split(".")
    if len(t) < _V1_TOKENS or t[0] != "$JS" or t[1] != "ACK":
        raise ValueError(f"not a JetStream ack subject: {reply!r}")
    if len(t) == _V1_TOKENS:
        rest = t[2:]
    elif len(t) >= _V2_TOKENS:
        rest = t[4:]
    else:
        raise ValueError(f"not a JetStream ack subject: {reply!r}")
    try:
        return AckReply(
            stream=rest[0],
            consumer=rest[1],
            delivered=int(rest[2]),
            stream_seq=int(rest[3]),
            consumer_seq=int(rest[4]),
        )
    except ValueError:
        raise ValueError(f"not a JetStream ack subject: {reply!r}") from None


def patch_websocket_transport() -> None:
    """Make nats-py's ``ws://``/``wss://`` transport quiet and leak-free on aiohttp 3.11+:
    it passes a float ``timeout`` to ``ws_connect`` (a DeprecationWarning, an error under
    warnings-as-errors), leaves its ``ClientSession`` open when the handshake fails, and on
    close leaves a TLS socket to aiohttp's SSL shutdown, which can outlive the event loop (an
    unclosed-socket ResourceWarning): once the WebSocket close handshake is done the socket
    is aborted. Idempotent; a no-op without aiohttp."""
    try:
        import aiohttp
        from nats.aio import transport
    except ImportError:  # pragma: no cover - the websocket extra is not installed
        return
    cls = transport.WebSocketTransport
    if getattr(cls, "_mailslot_patched", False):
        return

    async def _dial(self: Any, url: str, connect_timeout: float, **kw: Any) -> None:
        try:
            self._ws = await self._client.ws_connect(
                url,
                timeout=aiohttp.ClientWSTimeout(ws_close=connect_timeout),
                headers=self._get_custom_headers(),
                max_msg_size=0,
                **kw,
            )
        except BaseException:
            await self._client.close()
            raise
        conn = getattr(self._ws, "_conn", None)  # aiohttp's Connection: its transport
        self._mailslot_transport = getattr(conn, "transport", None)

    wait_closed_before = cls.wait_closed

    async def wait_closed(self: Any) -> None:
        await wait_closed_before(self)
        tr = getattr(self, "_mailslot_transport", None)
        if tr is not None:
            tr.abort()
            self._mailslot_transport = None
            await asyncio.sleep(0)  # abort closes the socket on the next loop iteration

    async def connect(self: Any, uri: Any, buffer_size: int, connect_timeout: float) -> None:
        await _dial(self, uri.geturl(), connect_timeout)
        self._using_tls = False

    async def connect_tls(
        self: Any, uri: Any, ssl_context: Any, buffer_size: int, connect_timeout: float
    ) -> None:
        if self._ws and not self._ws.closed:
            if self._using_tls:
                return
            raise transport.ProtocolError("ws: cannot upgrade to TLS")
        await _dial(self, uri if isinstance(uri, str) else uri.geturl(), connect_timeout, ssl=ssl_context)
        self._using_tls = True

    cls.wait_closed = wait_closed  # type: ignore[method-assign]
    cls.connect = connect  # type: ignore[method-assign]
    cls.connect_tls = connect_tls  # type: ignore[method-assign]
    cls._mailslot_patched = True  # type: ignore[attr-defined]
