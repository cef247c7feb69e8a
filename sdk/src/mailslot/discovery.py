"""Finding agents by text over their registry cards.

There is no search index: a listing of the registry (one batched read) is filtered here. A
card matches when every word of the query occurs, case-insensitively, in its name,
description, capabilities, skills, tags, address or metadata (metadata as JSON text, so a
card registered through a gateway is searchable by whatever it carried). Cards are ranked by
how often the words occur, name and tag hits first, then by address, and cut into pages.
A caller that asks for "semantic" search gets this keyword match too: no vector index exists.
"""

from __future__ import annotations

import json
import re

from ._boundary import count as check_count
from .errors import InvalidInput
from .link import Link
from .mailbox import AgentCard
from .registry import list_agents

#: Longest query text, and most cards on one page.
MAX_QUERY_TEXT = 1024
MAX_PAGE_SIZE = 1000

_WORD = re.compile(r"\w[\w.:/@+-]*", re.UNICODE)


def words(text: str | None) -> list[str]:
    if text is None:
        return []
    if not isinstance(text, str):
        raise InvalidInput(f"text must be a str, not {type(text).__name__}")
    if len(text) > MAX_QUERY_TEXT:
        raise InvalidInput(f"text is longer than {MAX_QUERY_TEXT} characters")
    return [w.lower() for w in _WORD.findall(text)]


def score(card: AgentCard, query: list[str]) -> int:
    """How well ``card`` matches every word of ``query``; 0 when one is missing."""
    strong = " ".join([card.name or "", *card.tags, *card.skills, *card.capabilities, card.address or ""])
    strong = strong.lower()
    weak = " ".join([card.description or "", json.dumps(card.metadata, ensure_ascii=False)]).lower()
    total = 0
    for w in query:
        hits = 3 * strong.count(w) + weak.count(w)
        if not hits:
            return 0
        total += hits
    return total


async def discover(
    link: Link, text: str | None, *, limit: int = 20, page: int = 1, include_offline: bool = False
) -> list[AgentCard]:
    query = words(text)
    limit = check_count(limit, what="limit", minimum=1, maximum=MAX_PAGE_SIZE)
    page = check_count(page, what="page", minimum=1, maximum=2**31)
    cards = await list_agents(link, include_offline=include_offline)
    if query:
        scored = [(score(c, query), c) for c in cards]
        cards = [c for s, c in sorted(scored, key=lambda sc: (-sc[0], sc[1].address or "")) if s]
    start = (page - 1) * limit
    return cards[start : start + limit]


__all__ = ["MAX_PAGE_SIZE", "MAX_QUERY_TEXT", "discover", "score", "words"]
