"""One agent's card by its address: ``ms.agent(address)``.

The registry's listing (:func:`mailslot.registry.list_agents`) reads every key of the agents
and mailboxes buckets at once, with a body-addressed direct get (``multi_last``), which a
subject permission cannot scope, so an agent credential may not list. This reads the one
address instead, with two last-by-subject direct gets (``DIRECT.GET.<stream>.<subject>``):
its lease (the live card), and only without one its mailbox record (the card it last had,
``status="offline"``): the same card ``agents(include_offline=True)`` lists for it.

An agent credential reads its own card this way (it reads its own lease and record where it
writes them, ``protocol.principals``). Another agent's card it gets as ``agents()`` lists it:
cards are public inside a tenant (the registry is how agents find each other, and the
sidecar lists every card to any agent, ``protocol.views`` op ``agents``), so ``agent(other)``
answers what ``agents()`` would, through the same sidecar listing, not through a grant on
other agents' leases and records. A tenant credential reads any card directly.
"""

from __future__ import annotations

import json

from mailslot_broker import protocol as p
from nats.js import errors as jserr
from nats.js.kv import KV_MARKER_REASON, KV_OP

from ._boundary import boundary
from .link import Link
from .mailbox import AgentCard
from .registry import _card, list_agents


async def _last_value(link: Link, bucket: str, address: str) -> bytes | None:
    """The key's value; None when it has none (absent, deleted, or a lapsed lease's marker).
    An agent credential reads its own lease and record where it writes them, the agent writes
    stream: the bucket's copy is the same, one sourcing hop later."""
    if link.agent is not None:
        aw = p.agent_writes
        stream, subject = aw.AGENT_WRITES_STREAM, aw.agent_write_subject(bucket, address)
    else:
        stream, subject = p.kv_stream(bucket), p.kv_subject(bucket, address)
    try:
        msg = await link.js.get_last_msg(stream, subject, direct=True)
    except jserr.NotFoundError:
        return None
    headers = msg.headers or {}
    if headers.get(KV_OP) or headers.get(KV_MARKER_REASON) or not msg.data:
        return None
    return bytes(msg.data)


async def read_card(link: Link, address: str, *, include_offline: bool = False) -> AgentCard | None:
    """``address``'s card while its lease lives; else, with ``include_offline``, the card its
    mailbox record keeps (``status="offline"``); else None."""
    link.check_open()
    if link.agent is not None and address != link.agent:
        return await _listed_card(link, address, include_offline=include_offline)
    with boundary():
        live = await _last_value(link, p.AGENTS_BUCKET, address)
        if live is not None:
            return _card(address, live)
        if not include_offline:
            return None
        record = await _last_value(link, p.MAILBOXES_BUCKET, address)
    if record is None:
        return None
    card = _card(address, json.dumps(p.MailboxRecord.decode(record).card).encode())
    return card.model_copy(update={"status": "offline"})


async def _listed_card(link: Link, address: str, *, include_offline: bool) -> AgentCard | None:
    """Another agent's card, for an agent credential: the one the sidecar's listing holds."""
    for card in await list_agents(link, include_offline=include_offline):
        if card.address == address:
            return card
    return None


__all__ = ["read_card"]
