"""Reading mail straight from the stream (direct gets): for peeking and for replies."""

from __future__ import annotations

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as jserr
from nats.js.api import RawStreamMsg


async def next_stored(js: JetStreamContext, subject: str, seq: int) -> RawStreamMsg | None:
    """The first mail-stream message on ``subject`` at or after ``seq``; None if none."""
    try:
        return await js.get_msg(p.MAIL_STREAM, seq=seq, subject=subject, next=True, direct=True)
    except jserr.NotFoundError:
        return None


def as_msg(nc: NatsClient, raw: RawStreamMsg, *, subject: str = "") -> Msg:
    """A stored message as nats-py's Msg (no reply subject), its stream sequence in a header."""
    headers = dict(raw.headers or {})
    headers[p.Header.NATS_SEQUENCE] = str(raw.seq)
    return natscompat.stored_msg(nc, subject=raw.subject or subject, data=raw.data or b"", headers=headers)
