"""The sync twin of advisory claims (``ms.claims`` on a :class:`~mailslot.sync.SyncMailslot`)."""

from __future__ import annotations

from collections.abc import Iterable

from ._portal import PORTAL
from .claims import Claim, Claims


class SyncClaims:
    """Blocking twin of :class:`mailslot.Claims`."""

    def __init__(self, claims: Claims) -> None:
        self._c = claims

    def claim(
        self, keys: str | Iterable[str], *, ttl: float, holder: str | None = None, reason: str | None = None
    ) -> list[Claim]:
        return PORTAL.call(self._c.claim(keys, ttl=ttl, holder=holder, reason=reason))

    def renew(self, keys: str | Iterable[str], *, ttl: float, holder: str | None = None) -> list[Claim]:
        return PORTAL.call(self._c.renew(keys, ttl=ttl, holder=holder))

    def release(self, keys: str | Iterable[str], *, holder: str | None = None) -> list[str]:
        return PORTAL.call(self._c.release(keys, holder=holder))

    def list(self, prefix: str | None = None) -> list[Claim]:
        return PORTAL.call(self._c.list(prefix))


__all__ = ["SyncClaims"]
