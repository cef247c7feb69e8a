"""Sync twin of the mail watch. Part of :mod:`mailslot.sync` (import it from there); what
``watch_mail`` returns there is listening already."""

from __future__ import annotations

from ._sync_streams import _SyncStream
from .mailwatch import MailChange, MailWatch


class SyncMailWatch(_SyncStream[MailWatch, MailChange]):
    """Blocking twin of :class:`~mailslot.MailWatch`."""

    @property
    def address(self) -> str:
        return self._aio.address

    @property
    def closed(self) -> bool:
        return self._aio.closed

    def pending(self) -> int:
        return self._aio.pending()


__all__ = ["SyncMailWatch"]
