"""The values the state store hands out (:mod:`mailslot.state`), apart so the tenant's and
an agent's stores (:mod:`mailslot._agent_state`) share them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeAlias

from mailslot_broker import errors as berr
from mailslot_broker.kvscan import KvItem

from .errors import InvalidStateKey

#: A key: one segment, or a tuple of 1..8 (a prefix may also be ``()``).
Key: TypeAlias = str | tuple[str, ...]


@dataclass(frozen=True)
class StateEntry:
    """A key's current value and revision; ``updated_at`` is when the server stored it."""

    key: tuple[str, ...]
    value: bytes
    revision: int
    updated_at: datetime


@dataclass(frozen=True)
class StateChange:
    """One change seen by a watch: a new value, or ``value=None`` when the key was deleted
    (deleted, purged, or its TTL ran out)."""

    key: tuple[str, ...]
    value: bytes | None
    revision: int

    @property
    def deleted(self) -> bool:
        return self.value is None


@contextlib.contextmanager
def _key_check() -> Iterator[None]:
    try:
        yield
    except berr.ProtocolViolation as exc:
        raise InvalidStateKey(str(exc)) from exc


def _entry(key: tuple[str, ...], item: KvItem) -> StateEntry:
    return StateEntry(key, item.value, item.revision, item.created or datetime.now(timezone.utc))


__all__ = ["Key", "StateChange", "StateEntry"]
