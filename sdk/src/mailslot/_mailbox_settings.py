"""What ``open()`` was asked for, checked before it writes anything (ranges in
``mailslot_broker.protocol.defaults``), and the agent card it keeps with the lease."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from mailslot_broker import protocol as p
from pydantic import BaseModel, Field, ValidationError

from ._boundary import count as check_count
from ._boundary import plain_seconds, retry_policy, seconds
from .errors import InvalidInput


class AgentCard(BaseModel):
    """What an agent says about itself; kept with its lease (shaped like an A2A AgentCard)."""

    name: str | None = None
    description: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    skills: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: str = "online"
    address: str | None = None


def new_address() -> str:
    """An unguessable address for an agent that did not bring a name."""
    return "agent-" + secrets.token_hex(12)


def checked_card(address: str, card: AgentCard | Mapping[str, Any] | None) -> AgentCard:
    """``card`` for the mailbox at ``address``, refused with InvalidInput before open()
    writes anything if it is not a card or too large to keep with the lease."""
    try:
        if card is None:
            out = AgentCard(address=address)
        elif isinstance(card, AgentCard):
            out = AgentCard.model_validate({**card.model_dump(), "address": address})
        elif isinstance(card, Mapping):
            out = AgentCard.model_validate({**dict(card), "address": address})
        else:
            raise InvalidInput(f"card must be an AgentCard or a mapping, not {type(card).__name__}")
        size = len(out.model_dump_json().encode())
    except (ValidationError, ValueError, TypeError, RecursionError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"card is not a valid agent card: {exc}") from exc
    if size > p.MAX_CARD_BYTES:
        raise InvalidInput(f"card is {size} bytes as JSON; the limit is {p.MAX_CARD_BYTES}")
    return out


@dataclass(frozen=True)
class Settings:
    """A mailbox's lease, retention, redelivery and receive settings, every one checked."""

    ttl: float
    keep: float
    policy: p.RetryPolicy
    prefetch: int
    heartbeat: float
    card: AgentCard

    @classmethod
    def check(
        cls,
        address: str,
        *,
        named: bool,
        ttl: float | timedelta | None = None,
        keep: float | timedelta | None = None,
        card: AgentCard | Mapping[str, Any] | None = None,
        ack_wait: float | timedelta | None = None,
        max_deliver: int | None = None,
        backoff: Iterable[float | timedelta] | None = None,
        prefetch: int = 1,
        heartbeat: float | timedelta | None = None,
    ) -> Settings:
        """``named``: the agent brought its address (an identity-on-call one keeps nothing)."""
        lease_ttl = p.DEFAULT_LEASE_TTL
        if ttl is not None:
            lease_ttl = float(seconds(ttl, what="ttl", minimum=p.MIN_LEASE_TTL, maximum=p.MAX_LEASE_TTL) or 0)
        if keep is None:
            kept = p.DEFAULT_KEEP if named else p.DEFAULT_IDENTITY_KEEP
        else:
            kept = float(plain_seconds(keep, what="keep", maximum=p.MAX_KEEP) or 0)
        policy = retry_policy(
            p.DEFAULT_ACK_WAIT if ack_wait is None else ack_wait,
            p.DEFAULT_MAX_DELIVER if max_deliver is None else max_deliver,
            backoff,
        )
        batch = check_count(prefetch, what="prefetch", minimum=1, maximum=p.MAX_PREFETCH)
        if heartbeat is None:
            beat = min(max(policy.ack_wait, p.MIN_HEARTBEAT), p.MAX_HEARTBEAT)
        else:
            beat = float(
                plain_seconds(heartbeat, what="heartbeat", minimum=p.MIN_HEARTBEAT, maximum=p.MAX_HEARTBEAT)
                or 0
            )
        return cls(
            ttl=lease_ttl,
            keep=kept,
            policy=policy,
            prefetch=batch,
            heartbeat=beat,
            card=checked_card(address, card),
        )
