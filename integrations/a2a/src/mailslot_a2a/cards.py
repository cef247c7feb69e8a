"""Mailslot's registry card <-> A2A's ``AgentCard``.

The two cards overlap in name, description, skills and capabilities; each also has fields the
other lacks (Mailslot: address, tags, free metadata; A2A: interfaces, skill objects, modes,
security ...). Mapping one way keeps what the other cannot hold inside it, so a round trip in
either direction gives back the card it started from:

* A2A -> Mailslot keeps the whole A2A card as JSON in ``metadata["a2a_card"]`` (the registry
  then serves it unchanged to the HTTP front) and copies skill ids, capability flags and skill
  tags into the Mailslot lists so ``ms.agents(capability=..., tag=...)`` finds the agent.
* Mailslot -> A2A maps skills to ``AgentSkill`` objects, capability names to the A2A flags
  where A2A has one, and keeps the Mailslot-only fields in one card extension
  (:data:`CARD_EXTENSION`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import mailslot
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentExtension, AgentInterface, AgentSkill
from google.protobuf import json_format

#: The protocol binding name of the Mailslot transport in ``supported_interfaces``.
BINDING = "MAILSLOT"
#: URL scheme of a Mailslot interface: ``mailslot://<address>``.
SCHEME = "mailslot://"
#: A2A protocol version the cards announce.
PROTOCOL_VERSION = "1.0"
#: The extension of an A2A card that carries Mailslot-only fields (address, tags, metadata and
#: capability names A2A has no flag for).
CARD_EXTENSION = "urn:mailslot:card"
#: ``metadata`` key of a Mailslot card holding the agent's A2A card (protobuf JSON).
METADATA_KEY = "a2a_card"

#: Mailslot capability names that are A2A capability flags.
_FLAGS = {"streaming": "streaming", "push_notifications": "push_notifications"}


def mailslot_url(address: str) -> str:
    return SCHEME + address


def address_of(url: str) -> str:
    """The mailbox address named by a ``mailslot://`` interface URL."""
    if not url.startswith(SCHEME) or len(url) == len(SCHEME):
        raise ValueError(f"not a Mailslot interface URL: {url!r}")
    return url[len(SCHEME) :].strip("/")


def mailslot_interface(address: str) -> AgentInterface:
    return AgentInterface(
        url=mailslot_url(address), protocol_binding=BINDING, protocol_version=PROTOCOL_VERSION
    )


def card_to_json(card: AgentCard) -> dict[str, Any]:
    return json_format.MessageToDict(card)


def card_from_json(data: dict[str, Any] | str | bytes) -> AgentCard:
    if isinstance(data, (str, bytes)):
        data = json.loads(data)
    return json_format.ParseDict(data, AgentCard(), ignore_unknown_fields=True)


def with_interfaces(card: AgentCard, interfaces: Iterable[AgentInterface]) -> AgentCard:
    """A copy of ``card`` listing ``interfaces`` (in that order, the client's first choice
    first), replacing the ones it had."""
    out = AgentCard()
    out.CopyFrom(card)
    del out.supported_interfaces[:]
    out.supported_interfaces.extend(interfaces)
    return out


def from_a2a(card: AgentCard, *, address: str | None = None) -> mailslot.AgentCard:
    """The Mailslot card to open the agent's mailbox with (``ms.open(address, card=...)``)."""
    extra: dict[str, Any] = {}
    for ext in card.capabilities.extensions:
        if ext.uri == CARD_EXTENSION:
            extra = json_format.MessageToDict(ext.params)
    capabilities = list(extra.get("capabilities", []))
    for name, flag in _FLAGS.items():
        if getattr(card.capabilities, flag) and name not in capabilities:
            capabilities.append(name)
    tags = list(extra.get("tags", []))
    for skill in card.skills:
        tags.extend(t for t in skill.tags if t not in tags)
    metadata = dict(extra.get("metadata", {}))
    metadata[METADATA_KEY] = card_to_json(card)
    return mailslot.AgentCard(
        name=card.name or None,
        description=card.description or None,
        capabilities=capabilities,
        skills=[s.id for s in card.skills],
        tags=tags,
        metadata=metadata,
        address=address or extra.get("address"),
    )


def to_a2a(card: mailslot.AgentCard, *, interfaces: Iterable[AgentInterface] | None = None) -> AgentCard:
    """The A2A card of a registered agent. A card that came from :func:`from_a2a` gives back
    that A2A card; ``interfaces`` (default: the Mailslot binding of ``card.address``, when the
    card has none) replace the card's own."""
    kept = card.metadata.get(METADATA_KEY)
    out = card_from_json(kept) if kept else _built(card)
    if interfaces is not None:
        out = with_interfaces(out, interfaces)
    elif not out.supported_interfaces and card.address:
        out = with_interfaces(out, [mailslot_interface(card.address)])
    return out


def _built(card: mailslot.AgentCard) -> AgentCard:
    flags = {flag: name in card.capabilities for name, flag in _FLAGS.items()}
    extra: dict[str, Any] = {
        "capabilities": list(card.capabilities),
        "tags": list(card.tags),
        "metadata": {k: v for k, v in card.metadata.items() if k != METADATA_KEY},
    }
    if card.address:
        extra["address"] = card.address
    ext = AgentExtension(uri=CARD_EXTENSION, description="Mailslot card fields A2A has no place for")
    ext.params.update(extra)
    return AgentCard(
        name=card.name or card.address or "",
        description=card.description or "",
        version="1.0.0",
        capabilities=AgentCapabilities(extensions=[ext], **flags),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id=s, name=s, description=s, tags=list(card.tags)) for s in card.skills],
    )


__all__ = [
    "BINDING",
    "CARD_EXTENSION",
    "METADATA_KEY",
    "PROTOCOL_VERSION",
    "SCHEME",
    "address_of",
    "card_from_json",
    "card_to_json",
    "from_a2a",
    "mailslot_interface",
    "mailslot_url",
    "to_a2a",
    "with_interfaces",
]
