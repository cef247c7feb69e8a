"""Blocking twin of :class:`mailslot.audit.Audit` (``SyncMailslot.audit``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from ._portal import PORTAL
from .audit import Audit, AuditRecord, AuditStatus


class SyncAudit:
    def __init__(self, audit: Audit) -> None:
        self._a = audit

    def enable(self, *, bodies: bool = False, retention: float | timedelta | None = None) -> AuditStatus:
        return PORTAL.call(self._a.enable(bodies=bodies, retention=retention))

    def disable(self) -> bool:
        return PORTAL.call(self._a.disable())

    def status(self) -> AuditStatus:
        return PORTAL.call(self._a.status())

    def query(
        self,
        *,
        sender: str | None = None,
        recipient: str | None = None,
        since: datetime | timedelta | None = None,
        message_id: str | None = None,
        kinds: tuple[str, ...] | list[str] | None = None,
    ) -> list[AuditRecord]:
        return PORTAL.call(
            self._a.query(sender=sender, recipient=recipient, since=since, message_id=message_id, kinds=kinds)
        )


__all__ = ["SyncAudit"]
