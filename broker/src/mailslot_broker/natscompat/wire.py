"""Writing to the connection: headers written in one join, a JetStream publish as one coroutine,
and the request/reply mux those share with nats-py's own requests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from nats.aio.client import _validate_subject
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import errors as jserr
from nats.js.api import PubAck
from nats.protocol.command import hpub_cmd

if TYPE_CHECKING:
    from nats.aio.client import Client


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
    await _write(nc, subject, reply, hdr, payload)


async def _write(nc: Client, subject: str, reply: str, hdr: bytes, payload: bytes) -> None:
    """The HPUB frame, counters and flush nats-py's ``publish`` writes (checks done)."""
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
) -> PubAck | None:
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
        await _write(nc, subject, prefix + token, hdr, payload)
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
    # Built directly: ``PubAck.from_response`` walks ``dataclasses.fields`` on every call.
    return PubAck(
        stream=resp["stream"], seq=resp["seq"], domain=resp.get("domain"), duplicate=resp.get("duplicate")
    )


def pending_responses(nc: Client) -> Mapping[str, asyncio.Future[Any]]:
    """The futures of in-flight requests, keyed by the reply token after
    :func:`response_prefix` (the live dict: failing a future fails that request)."""
    return nc._resp_map
