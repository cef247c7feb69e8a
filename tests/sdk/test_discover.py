"""Finding agents by text over their cards, paged (real server)."""

from __future__ import annotations

import mailslot
import pytest
from mailslot import AgentCard, sync


async def test_discover_by_words_over_name_description_skills_tags(ms: mailslot.Mailslot) -> None:
    await ms.open(
        "translator", card=AgentCard(name="Translator", description="French to English", tags=["lang"])
    )
    await ms.open(
        "coder", card=AgentCard(name="Coder", description="writes Python", skills=["python", "tests"])
    )
    await ms.open(
        "reviewer",
        card={"name": "Reviewer", "description": "reviews python code", "metadata": {"x": "zebra"}},
    )
    assert [c.address for c in await ms.discover("python")] == [
        "coder",
        "reviewer",
    ]  # skill beats description
    assert [c.address for c in await ms.discover("FRENCH english")] == ["translator"]
    assert [c.address for c in await ms.discover("lang")] == ["translator"]
    assert [c.address for c in await ms.discover("zebra")] == ["reviewer"]  # metadata too
    assert [c.address for c in await ms.discover("python french")] == []  # every word must match
    assert [c.address for c in await ms.discover()] == ["coder", "reviewer", "translator"]
    assert [c.address for c in await ms.discover(limit=2, page=1)] == ["coder", "reviewer"]
    assert [c.address for c in await ms.discover(limit=2, page=2)] == ["translator"]
    assert await ms.discover(limit=2, page=3) == []


@pytest.mark.parametrize(
    "kwargs", [{"text": 5}, {"text": "x" * 2000}, {"limit": 0}, {"page": 0}, {"limit": "3"}]
)
async def test_bad_discover_arguments(ms: mailslot.Mailslot, kwargs: dict[str, object]) -> None:
    with pytest.raises(mailslot.InvalidInput):
        await ms.discover(**kwargs)  # type: ignore[arg-type]


def test_sync_discover(server) -> None:
    c = server.credentials
    with sync.connect(server.url, user=c.user, password=c.password) as ms:
        box = ms.open("finder", card={"name": "Finder", "skills": ["search"]})
        assert [a.address for a in ms.discover("search")] == ["finder"]
        box.close()
