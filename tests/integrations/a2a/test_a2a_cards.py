"""Mailslot's registry card <-> A2A's AgentCard: the fields both have survive both ways, and
a card registered from an A2A card comes back out of the registry as that card."""

from __future__ import annotations

import mailslot
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from mailslot_a2a import BINDING, from_a2a, mailslot_interface, to_a2a
from mailslot_a2a.cards import METADATA_KEY, address_of
from testsupport import unique


def a2a_card() -> AgentCard:
    return AgentCard(
        name="reviewer",
        description="reviews pull requests",
        version="2.1.0",
        supported_interfaces=[
            mailslot_interface("reviewer"),
            AgentInterface(url="http://127.0.0.1:9/agents/reviewer", protocol_binding="JSONRPC"),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/markdown"],
        skills=[
            AgentSkill(id="review", name="Review", description="review a diff", tags=["code", "python"]),
            AgentSkill(id="summarize", name="Summarize", description="summarize", tags=["text"]),
        ],
    )


def test_a2a_card_to_mailslot_and_back_is_lossless() -> None:
    card = a2a_card()
    ms_card = from_a2a(card, address="reviewer")
    assert ms_card.name == "reviewer" and ms_card.description == "reviews pull requests"
    assert ms_card.skills == ["review", "summarize"]
    assert ms_card.capabilities == ["streaming"]
    assert ms_card.tags == ["code", "python", "text"]
    assert ms_card.address == "reviewer"
    assert to_a2a(ms_card) == card


def test_mailslot_card_to_a2a_and_back_keeps_every_field() -> None:
    ms_card = mailslot.AgentCard(
        name="coder",
        description="writes code",
        capabilities=["python", "streaming"],
        skills=["fix-bug", "refactor"],
        tags=["backend"],
        metadata={"team": "core", "cost": 3},
        address="coder",
    )
    card = to_a2a(ms_card)
    assert card.name == "coder" and card.description == "writes code"
    assert [s.id for s in card.skills] == ["fix-bug", "refactor"]
    assert card.capabilities.streaming and not card.capabilities.push_notifications
    assert [(i.url, i.protocol_binding) for i in card.supported_interfaces] == [("mailslot://coder", BINDING)]
    assert address_of(card.supported_interfaces[0].url) == "coder"
    back = from_a2a(card)
    assert back.model_dump(exclude={"metadata"}) == ms_card.model_dump(exclude={"metadata"})
    assert {k: v for k, v in back.metadata.items() if k != METADATA_KEY} == ms_card.metadata


async def test_registry_serves_the_a2a_card_an_agent_opened_with(shared_ms: mailslot.Mailslot) -> None:
    address = unique("reviewer")
    card = a2a_card()
    inbox = await shared_ms.open(address, card=from_a2a(card, address=address))
    try:
        listed = [c for c in await shared_ms.agents(capability="review") if c.address == address]
        assert len(listed) == 1
        assert to_a2a(listed[0]) == card
        assert [c.address for c in await shared_ms.agents(tag="python") if c.address == address] == [address]
    finally:
        await inbox.destroy()
