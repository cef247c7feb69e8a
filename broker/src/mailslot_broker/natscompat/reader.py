"""Reading from the connection: subscriptions whose messages are handed over as their subject
alone, past nats-py's header parsing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.subscription import Subscription


_log = logging.getLogger("mailslot.nats")

#: The attribute of a connection that holds its subject-only table. On the connection itself,
#: not in a module-level weak dict: the callbacks refer back to the connection (a receiver
#: holds its link), and a weak dict's value keeping its own key alive is never collected.
_ATTR = "_mailslot_subject_only"


class _SubjectOnly:
    """Subscription id -> the callback that gets its messages' subjects alone."""

    __slots__ = ("callbacks", "prune_at")

    def __init__(self) -> None:
        self.callbacks: dict[int, Callable[[str], None]] = {}
        self.prune_at = 64


def subject_only_callbacks(nc: Client) -> dict[int, Callable[[str], None]]:
    """The live table of ``nc`` (empty before the first :func:`deliver_subjects_only`)."""
    table: _SubjectOnly | None = getattr(nc, _ATTR, None)
    return table.callbacks if table is not None else {}


def deliver_subjects_only(sub: Subscription, on_subject: Callable[[str], None]) -> None:
    """From now on, hand each message of ``sub`` to ``on_subject`` as its subject alone,
    called from the connection's reader, instead of parsing it into a ``Msg`` for the
    subscription's callback. For bells: the stream's headers-only republish carries every
    header of the stored mail, which nats-py parses character by character, and a mailbox
    only reads the subject (measured: a receiver spent as long on the bells as on the mail
    they rang for; bench/README.md). ``on_subject`` must be quick and must not raise (it is
    logged). The subscription is forgotten once unsubscribed."""
    nc: Any = sub._conn
    table: _SubjectOnly | None = getattr(nc, _ATTR, None)
    if table is None:
        table = _SubjectOnly()
        setattr(nc, _ATTR, table)
        callbacks = table.callbacks
        process_msg = nc._process_msg
        subs = nc._subs
        stats = nc.stats

        async def subjects_first(sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
            fn = callbacks.get(sid)
            if fn is None:
                await process_msg(sid, subject, reply, data, headers)
                return
            if sid not in subs:  # unsubscribed: nats-py would drop it too
                del callbacks[sid]
                return
            stats["in_msgs"] += 1
            stats["in_bytes"] += len(data)
            try:
                fn(subject.decode())
            except Exception:
                _log.exception("a subject-only subscription's callback failed")

        nc._process_msg = subjects_first
    callbacks = table.callbacks
    if len(callbacks) >= table.prune_at:  # amortised: unsubscribed ones with no message since
        for sid in [sid for sid in callbacks if sid not in nc._subs]:
            del callbacks[sid]
        table.prune_at = max(64, 2 * len(callbacks))
    callbacks[sub._id] = on_subject


def forget_subjects_only(sub: Subscription) -> None:
    """Drop ``sub``'s entry (and its callback's references) at once, after unsubscribing;
    without this it goes at the next message for it or the next registration's sweep."""
    subject_only_callbacks(sub._conn).pop(sub._id, None)
