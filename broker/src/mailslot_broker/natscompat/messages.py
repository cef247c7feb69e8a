"""Messages: the connection behind one, ``Msg`` objects for stored or marker messages, and the
layout of a JetStream ack reply subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from nats.aio.msg import Msg

if TYPE_CHECKING:
    from nats.aio.client import Client


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
