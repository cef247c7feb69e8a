"""Messages as a pull delivers them, for the receive loop's logic tests (no server)."""

from __future__ import annotations

from typing import Any, cast

import mailslot
from mailslot_broker import protocol as p
from nats.aio.msg import Msg


def mail(
    prio: p.Priority, seq: int, *, delivered: int = 1, headers: dict[str, str] | None = None
) -> mailslot.Message:
    """A message as a pull delivers it (subject, ack reply with its stream sequence)."""
    msg = Msg(
        _client=cast(Any, None),
        subject=p.mail_subject(prio, "someone"),
        reply=f"$JS.ACK.MAIL.c.{delivered}.{seq}.{seq}.1700000000000000000.0",
        headers=headers or {},
    )
    return mailslot.Message(msg, None)
