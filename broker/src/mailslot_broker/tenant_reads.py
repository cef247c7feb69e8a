"""Reads (and the keep-latest delete) done with a tenant credential, the same for a tenant's
SDK client and for the sidecar answering an agent credential that may not do them itself
(:mod:`.sidecar.views`): one copy of each, so the two cannot drift apart.

- :func:`registry_cards`: the registry listing (``agents()``): live cards and, with
  ``include_offline``, the cards of agents whose lease lapsed while their mailbox is kept.
- :func:`delete_keyed`: keep-latest (``send(..., replace_key=...)``): the waiting mail of a
  mailbox with a key that the caller's rule calls older.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping

from nats.js import JetStreamContext

from . import kvscan, mailscan
from . import protocol as p
from .deadletters import delete_stored

#: Messages per direct-get batch of a keep-latest scan.
SCAN_BATCH = 256


async def registry_cards(js: JetStreamContext, *, include_offline: bool) -> list[tuple[str, bytes, bool]]:
    """``(address, card JSON, offline)`` of every agent with a live lease, and with
    ``include_offline`` of every agent whose lease lapsed while its mailbox is kept (the card
    its record holds: until the sidecar has noticed the lapse it still says "online"), in
    address order, in two batched reads (no consumer is created: a ``watchall()`` per listing
    left one behind on the server for 300 s each time)."""
    items = await kvscan.read_bucket(js, p.AGENTS_BUCKET)
    records = await kvscan.read_bucket(js, p.MAILBOXES_BUCKET) if include_offline else {}
    out = [(key, item.value, False) for key, item in items.items() if item.value]
    for key, item in records.items():
        if key in items and items[key].value:
            continue
        card = json.dumps(p.MailboxRecord.decode(item.value).card, separators=(",", ":"))
        out.append((key, card.encode(), True))
    out.sort(key=lambda c: c[0])
    return out


async def delete_keyed(
    js: JetStreamContext,
    address: str,
    key: str,
    *,
    older: Callable[[Mapping[str, str], int], bool],
    below: int | None = None,
    timeout: float = 5.0,
) -> int:
    """Delete the waiting mail of ``address`` with keep-latest ``key`` for which
    ``older(headers, stream sequence)`` holds, every priority scanned (only up to sequence
    ``below`` when given); returns how many went. Not atomic with the send it follows: a
    receiver may take an older one in between, which is then simply delivered first."""
    gone = 0
    for prio in p.PRIORITIES:
        subject = p.mail_subject(prio, address)
        seq = 1
        doomed: list[int] = []
        done = False
        while not done:
            got = await mailscan.next_batch(js, p.MAIL_STREAM, subject, seq, SCAN_BATCH, timeout=timeout)
            start = seq
            for m in got:
                h = m.headers or {}
                stored = int(h.get(p.Header.NATS_SEQUENCE, "0"))
                seq = max(seq, stored + 1)
                if below is not None and stored >= below:
                    done = True
                    break
                if h.get(p.Header.REPLACE_KEY) == key and older(h, stored):
                    doomed.append(stored)
            if len(got) < SCAN_BATCH or seq == start:  # the end (or no sequences: stop)
                break
        for stored in doomed:
            if await delete_stored(js, p.MAIL_STREAM, stored):  # superseded: no erase
                gone += 1
    return gone


__all__ = ["SCAN_BATCH", "delete_keyed", "registry_cards"]
