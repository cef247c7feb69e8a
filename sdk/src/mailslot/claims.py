"""Advisory claims: "I am working on these keys (paths) until then", exclusive and expiring.

Coding agents sharing a repository use them as reservations: a claim keeps the others off a
file while its holder edits it, and frees it by itself when the holder stops renewing (it
crashed, or forgot). Advisory: nothing stops a write to the path, the claim only says who is
on it. Reach them as ``ms.claims``; the layout (bucket, key encoding, record) is the
protocol's (``mailslot_broker.protocol.claims``).

Every write is conditional on the revision it read, so two holders racing for a key cannot
both win, a renew or release never touches a claim taken since, and a claim of several keys
is all or none: on a conflict the keys this call created are released again before it raises.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from mailslot_broker import kvscan, natscompat
from mailslot_broker import protocol as p
from mailslot_broker.kvscan import KvItem
from mailslot_broker.provision import provision_claims
from nats.js import errors as jserr
from nats.js.kv import KeyValue

from ._boundary import boundary, checking
from ._kv_marker import write_marker
from .errors import ClaimConflict, ClaimNotHeld, InvalidInput
from .link import Link

#: How long a released key keeps its purge marker (then nothing of it is left in the bucket).
RELEASE_MARKER_TTL = 60.0
#: Writes of one key tried before giving up on a key that keeps changing under us.
_ATTEMPTS = 5


def _time(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=timezone.utc)


@dataclass(frozen=True)
class Claim:
    """One current claim: who holds ``key``, why, since and until when."""

    key: str
    holder: str
    reason: str | None
    claimed_at: datetime
    expires_at: datetime
    revision: int

    @classmethod
    def _of(cls, record: p.ClaimRecord, revision: int) -> Claim:
        return cls(
            record.key,
            record.holder,
            record.reason,
            _time(record.claimed_at),
            _time(record.expires_at),
            revision,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "holder": self.holder,
            "reason": self.reason,
            "claimed_at": self.claimed_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def _held(claims: Iterable[Claim]) -> str:
    return "; ".join(
        f"{c.key!r} by {c.holder} until {c.expires_at.isoformat(timespec='seconds')}" for c in claims
    )


ClaimList = list[Claim]


class Claims:
    """Claim, renew, release and list advisory claims. ``holder`` defaults to the client's
    name (an agent's connection is named after its mailbox address)."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        """The claims bucket, created on first use: connect() does not provision it, so an
        account that never claims spends no stream on it."""
        if self._kv is None:
            with boundary():
                try:
                    self._kv = await self._link.js.key_value(p.CLAIMS_BUCKET)
                except jserr.BucketNotFoundError:
                    await provision_claims(self._link.js, self._link.options.settings)
                    self._kv = await self._link.js.key_value(p.CLAIMS_BUCKET)
        return self._kv

    def _holder(self, holder: str | None) -> str:
        who = holder if holder is not None else self._link.name
        if who is None:
            raise InvalidInput("a claim needs a holder: pass holder=... or connect(name=...)")
        with checking():
            return p.validate_holder(who)

    def _keys(self, keys: Any) -> list[str]:
        self._link.check_open()
        with checking():
            return p.validate_claim_keys(keys)

    def _args(self, keys: Any, ttl: Any) -> tuple[list[str], float]:
        """The keys and the TTL, checked before anything is sent. The TTL is whole seconds,
        rounded up: the server's per-message TTL has no finer grain."""
        checked = self._keys(keys)
        with checking():
            seconds = p.validate_ttl(ttl, maximum=p.MAX_CLAIM_TTL)
        return checked, float(math.ceil(seconds))

    async def _read(self, keys: Iterable[str]) -> dict[str, tuple[KvItem, p.ClaimRecord | None]]:
        """Claim key -> (its KV entry, its record: None for a marker or garbage)."""
        kv_keys = {p.claim_kv_key(k): k for k in keys}
        with boundary():
            items = await kvscan.read_keys(self._link.js, p.CLAIMS_BUCKET, kv_keys, deleted=True)
        return {
            kv_keys[kk]: (item, p.ClaimRecord.decode(item.value) if item.live else None)
            for kk, item in items.items()
        }

    async def _drop(self, key: str, revision: int) -> bool:
        """Release ``key`` if ``revision`` is still its latest; False if it changed since."""
        subject = p.kv_subject(p.CLAIMS_BUCKET, p.claim_kv_key(key))
        return await write_marker(self._link, subject, p.release_headers(revision), ttl=RELEASE_MARKER_TTL)

    async def _take(self, kv: KeyValue, record: p.ClaimRecord, ttl: float) -> tuple[int, bool]:
        """Write ``record`` if its key is free (or already ours); (revision, created by this
        call). Raises ``ClaimConflict`` with the other holder's claim."""
        kv_key = p.claim_kv_key(record.key)
        last, created = 0, True
        for _ in range(_ATTEMPTS):
            with boundary():
                try:
                    return await natscompat.kv_update(
                        kv, kv_key, record.encode(), last=last, msg_ttl=ttl
                    ), created
                except jserr.KeyWrongLastSequenceError:
                    pass
            found = (await self._read([record.key])).get(record.key)
            if found is None:  # gone meanwhile (expired, purged)
                last, created = 0, True
                continue
            item, current = found
            if current is not None and current.holder != record.holder:
                raise ClaimConflict(f"{record.key!r} is claimed", [Claim._of(current, item.revision)])
            # a marker (expired or released), or our own claim: take it over
            last, created = item.revision, current is None
        raise ClaimConflict(f"{record.key!r} kept changing while it was claimed")

    async def claim(
        self, keys: str | Iterable[str], *, ttl: float, holder: str | None = None, reason: str | None = None
    ) -> ClaimList:
        """Claim every key for ``ttl`` seconds (1 s .. a day, rounded up to whole seconds),
        or none: if another holder has any of them, raise :class:`ClaimConflict` naming the
        holders, with nothing of this call left behind. A key this holder already claimed is
        claimed again with the new TTL. At most ``MAX_CLAIM_KEYS`` keys."""
        checked, seconds = self._args(keys, ttl)
        who = self._holder(holder)
        if reason is not None:
            with checking():
                reason = p.validate_holder(reason, what="reason", limit=p.MAX_REASON_LENGTH)
        kv = await self._bucket()
        now = time.time()
        made: list[tuple[str, int]] = []
        out: ClaimList = []
        try:
            # One order for every caller: two overlapping claims meet at their first shared key.
            for key in sorted(checked):
                record = p.ClaimRecord(
                    key=key, holder=who, reason=reason, claimed_at=now, expires_at=now + seconds
                )
                revision, created = await self._take(kv, record, seconds)
                if created:
                    made.append((key, revision))
                out.append(Claim._of(record, revision))
        except ClaimConflict as exc:
            await self._undo(made)
            holders = await self._others(checked, who)
            raise ClaimConflict(f"already claimed: {_held(holders)}", holders or exc.claims) from None
        except BaseException:
            await self._undo(made)
            raise
        order = {k: i for i, k in enumerate(checked)}
        return sorted(out, key=lambda c: order[c.key])

    async def _undo(self, made: list[tuple[str, int]]) -> None:
        for key, revision in made:
            with contextlib.suppress(Exception):
                await self._drop(key, revision)

    async def _others(self, keys: Iterable[str], who: str) -> ClaimList:
        with contextlib.suppress(Exception):
            found = await self._read(keys)
            return [
                Claim._of(rec, item.revision)
                for item, rec in found.values()
                if rec is not None and rec.holder != who
            ]
        return []

    async def _mine(self, keys: list[str], who: str, *, free_ok: bool) -> ClaimList:
        """This holder's current claims on ``keys``; raises :class:`ClaimNotHeld` if another
        holds one (or, unless ``free_ok``, if one is not claimed at all)."""
        found = await self._read(keys)
        mine: ClaimList = []
        others: ClaimList = []
        free: list[str] = []
        for key in keys:
            item, rec = found.get(key, (None, None))
            if item is None or rec is None:
                free.append(key)
            elif rec.holder == who:
                mine.append(Claim._of(rec, item.revision))
            else:
                others.append(Claim._of(rec, item.revision))
        if others:
            raise ClaimNotHeld(f"not held by {who}: {_held(others)}", others)
        if free and not free_ok:
            raise ClaimNotHeld(f"not held by {who} (not claimed, or expired): {', '.join(map(repr, free))}")
        return mine

    async def renew(self, keys: str | Iterable[str], *, ttl: float, holder: str | None = None) -> ClaimList:
        """Give this holder's claims on ``keys`` a fresh ``ttl``. Raises :class:`ClaimNotHeld`
        (renewing none) if one of them is not this holder's any more."""
        checked, seconds = self._args(keys, ttl)
        who = self._holder(holder)
        kv = await self._bucket()
        now = time.time()
        out: ClaimList = []
        for c in await self._mine(checked, who, free_ok=False):
            record = p.ClaimRecord(
                key=c.key,
                holder=who,
                reason=c.reason,
                claimed_at=c.claimed_at.timestamp(),
                expires_at=now + seconds,
            )
            with boundary():
                try:
                    revision = await natscompat.kv_update(
                        kv, p.claim_kv_key(c.key), record.encode(), last=c.revision, msg_ttl=seconds
                    )
                except jserr.KeyWrongLastSequenceError:
                    renewed = ", ".join(repr(x.key) for x in out) or "none"
                    raise ClaimNotHeld(
                        f"{c.key!r} changed while it was renewed (renewed: {renewed})"
                    ) from None
            out.append(Claim._of(record, revision))
        return out

    async def release(self, keys: str | Iterable[str], *, holder: str | None = None) -> list[str]:
        """Give up this holder's claims on ``keys``; returns the keys released. A key that is
        not claimed is skipped; one another holder has raises :class:`ClaimNotHeld` and
        nothing is released (a release never removes another holder's claim)."""
        checked = self._keys(keys)
        who = self._holder(holder)
        released: list[str] = []
        for c in await self._mine(checked, who, free_ok=True):
            if await self._drop(c.key, c.revision):
                released.append(c.key)
        return released

    async def list(self, prefix: str | None = None) -> ClaimList:
        """Every current claim (whose key starts with ``prefix``, if given), by key. Read in
        one batched direct get; no consumer is created."""
        self._link.check_open()
        await self._bucket()  # an account that never claimed has no bucket yet: none claimed
        with boundary():
            items = await kvscan.read_bucket(self._link.js, p.CLAIMS_BUCKET)
        out = [
            Claim._of(rec, item.revision)
            for item in items.values()
            if (rec := p.ClaimRecord.decode(item.value)) is not None
            and (prefix is None or rec.key.startswith(prefix))
        ]
        return sorted(out, key=lambda c: c.key)


__all__ = ["Claim", "Claims"]
