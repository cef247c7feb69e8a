"""Reading from the connection: subscriptions whose messages are handed over as their subject
alone, past nats-py's header parsing.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.subscription import Subscription


_log = logging.getLogger("mailslot.nats")


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
