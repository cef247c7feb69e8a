"""The JetStream API behind nats-py's methods: its connection and prefix, raw API requests, the in-
flight ``publish_async`` futures and a delete without secure erase.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nats.errors import NoRespondersError
from nats.js import errors as jserr

from .. import protocol as p

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext


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
