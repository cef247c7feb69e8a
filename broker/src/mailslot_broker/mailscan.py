"""Reading a run of stored messages on one subject with a single batched direct get
(``{"seq": N, "next_by_subj": S, "batch": K}``, NATS 2.11+): one round trip for up to K
messages instead of one each. The messages come with their ``Nats-Subject``, ``Nats-Sequence``
and ``Nats-Time-Stamp`` headers, in sequence order, then an end-of-batch status."""

from __future__ import annotations

import contextlib
import json

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as jserr

from . import natscompat

_STATUS = "Status"
_DESCRIPTION = "Description"


async def next_batch(
    js: JetStreamContext, stream: str, subject: str, seq: int, batch: int, *, timeout: float = 5.0
) -> list[Msg]:
    """Up to ``batch`` messages on ``subject`` at or after ``seq`` (none: ``[]``)."""
    nc = natscompat.js_connection(js)
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    out: list[Msg] = []
    try:
        body = json.dumps({"seq": max(1, seq), "next_by_subj": subject, "batch": batch}).encode()
        await nc.publish(f"{js._prefix}.DIRECT.GET.{stream}", body, reply=inbox)
        while True:
            msg = await sub.next_msg(timeout=timeout)
            status = (msg.headers or {}).get(_STATUS)
            if status in ("204", "404"):  # end of batch / nothing there
                return out
            if status:
                raise jserr.APIError(code=int(status), description=(msg.headers or {}).get(_DESCRIPTION))
            out.append(msg)
            if len(out) >= batch:
                # The end-of-batch marker follows; it is not waited for.
                return out
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
