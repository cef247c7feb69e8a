"""The mailbox record: what survives an agent's absence.

One key per opened address in bucket ``MAILSLOT_MAILBOXES``; the value is JSON. The lease (in
``MAILSLOT_AGENTS``) says whether the agent is online; this record says that the address owns a
mailbox, how long the mailbox waits for its agent (``keep``), since when the agent has been away
(``offline_since``, written by the sidecar when it sees the lease lapse, cleared by ``open``),
and the agent's last card, so an offline agent can still be listed as offline.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from .defaults import DEFAULT_KEEP


class MailboxRecord(BaseModel):
    """Value of ``$KV.MAILSLOT_MAILBOXES.<address>``. Times are unix seconds (float)."""

    v: int = 1
    opened_at: float
    keep: float = DEFAULT_KEEP
    offline_since: float | None = None
    card: dict[str, Any] = Field(default_factory=dict)

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, data: bytes | None) -> MailboxRecord:
        """Parse a record; the version-0 format (a bare unix time) and garbage both decode to
        a record that keeps the default retention rather than being reclaimed early."""
        raw = (data or b"").strip()
        try:
            return cls.model_validate_json(raw)
        except ValidationError:
            pass
        try:
            return cls(opened_at=float(json.loads(raw or b"0")))
        except (ValueError, TypeError):
            return cls(opened_at=0.0)

    def reclaim_due(self) -> float | None:
        """Unix time at which retention runs out, or None while the agent counts as present."""
        if self.offline_since is None:
            return None
        return self.offline_since + self.keep
