"""The agent registry: REGISTER, REPORT, UNREGISTER and DISCOVER.

An mq9 registration is arbitrary JSON carrying ``mailbox``; it is kept unchanged in the
gateway's state (``mq9`` namespace) with a TTL that REPORT renews, and DISCOVER returns it
unchanged. Agents that Mailslot clients registered (the cards of their leases) are listed too,
shaped like an mq9 registration. ``text`` and ``semantic`` are both a keyword match (every
word must occur) through the SDK's discovery: there is no vector index.
"""

from __future__ import annotations

import json
from typing import Any

import mailslot
from mailslot.discovery import score, words

from . import wire as w
from .store import Store

#: mq9 agents REPORT every 30 s; a registration lapses after three missed reports.
DEFAULT_AGENT_TTL = 90.0
MAX_PAGE = 1000


def mailbox_of(value: Any) -> str:
    """``mailbox`` as a bare address (``mq9://<broker>/<addr>`` is accepted)."""
    if isinstance(value, str) and value.startswith("mq9://"):
        value = value[len("mq9://") :].partition("/")[2]
    return w.check_address(value, what="agent mailbox")


def _as_card(record: dict[str, Any]) -> mailslot.AgentCard:
    name = record.get("name")
    desc = record.get("payload")
    return mailslot.AgentCard(
        name=name if isinstance(name, str) else None,
        description=desc if isinstance(desc, str) else json.dumps(desc) if desc is not None else None,
        metadata=record,
        address=mailbox_of(record.get("mailbox")),
    )


def _from_card(card: mailslot.AgentCard) -> dict[str, Any]:
    return {
        "name": card.name or card.address,
        "mailbox": card.address,
        "payload": card.description or "",
        "agent_card": card.model_dump(mode="json"),
    }


class Agents:
    def __init__(self, ms: mailslot.Mailslot, store: Store, *, ttl: float = DEFAULT_AGENT_TTL) -> None:
        self.ms = ms
        self.store = store
        self.ttl = ttl

    async def register(self, req: dict[str, Any]) -> bytes:
        if "mailbox" not in req:
            raise w.Mq9Error("missing field mailbox")
        address = mailbox_of(req["mailbox"])
        await self.store.register(address, req, ttl=self.ttl)
        return w.reply()

    async def report(self, req: dict[str, Any]) -> bytes:
        if "mailbox" not in req:
            raise w.Mq9Error("missing field mailbox")
        address = mailbox_of(req["mailbox"])
        if not await self.store.refresh(address, ttl=self.ttl):
            raise w.Mq9Error(f"agent {address} is not registered")
        return w.reply()

    async def unregister(self, req: dict[str, Any]) -> bytes:
        if "mailbox" not in req:
            raise w.Mq9Error("missing field mailbox")
        await self.store.unregister(mailbox_of(req["mailbox"]))
        return w.reply()

    async def discover(self, req: dict[str, Any]) -> bytes:
        semantic = w.string(req, "semantic") or None
        text = semantic or w.string(req, "text") or None
        limit = min(w.integer(req, "limit", 20, minimum=1), MAX_PAGE)
        page = w.integer(req, "page", 1, minimum=1)
        try:
            query = words(text)
        except mailslot.InvalidInput as exc:
            raise w.Mq9Error(str(exc)) from None
        found: list[tuple[mailslot.AgentCard, dict[str, Any]]] = []
        seen: set[str] = set()
        for record in await self.store.agents():
            card = _as_card(record)
            found.append((card, record))
            seen.add(card.address or "")
        for card in await self.ms.agents():
            if card.address not in seen and not card.metadata.get("mq9"):
                found.append((card, _from_card(card)))
        if query:
            scored = [(score(card, query), card.address or "", record) for card, record in found]
            ranked = [r for s, _, r in sorted(scored, key=lambda x: (-x[0], x[1])) if s]
        else:
            ranked = [r for _, r in sorted(found, key=lambda cr: cr[0].address or "")]
        start = (page - 1) * limit
        return w.reply(agents=ranked[start : start + limit])
