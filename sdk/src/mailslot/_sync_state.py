"""The sync twin of the state store (``ms.state(namespace)`` on a :class:`~mailslot.sync.SyncMailslot`)."""

from __future__ import annotations

from datetime import timedelta

from ._portal import PORTAL
from ._sync_streams import _SyncStream
from .state import Key, StateChange, StateEntry, StateStore, StateWatch


class SyncStateWatch(_SyncStream[StateWatch, StateChange]):
    """Blocking twin of :class:`mailslot.state.StateWatch`: ``with store.watch() as changes:
    for ch in changes``. Listening from ``with`` (or the first ``next``) on."""

    def __enter__(self) -> SyncStateWatch:
        self.start()
        return self


class SyncStateStore:
    """Blocking twin of :class:`mailslot.StateStore`."""

    def __init__(self, store: StateStore) -> None:
        self._s = store

    @property
    def aio(self) -> StateStore:
        return self._s

    @property
    def namespace(self) -> str:
        return self._s.namespace

    @property
    def max_value_size(self) -> int:
        return self._s.max_value_size

    def get(self, key: Key) -> StateEntry | None:
        return PORTAL.call(self._s.get(key))

    def put(
        self,
        key: Key,
        value: bytes,
        *,
        expect_revision: int | None = None,
        ttl: float | timedelta | None = None,
    ) -> int:
        return PORTAL.call(self._s.put(key, value, expect_revision=expect_revision, ttl=ttl))

    def delete(self, key: Key, *, expect_revision: int | None = None) -> None:
        return PORTAL.call(self._s.delete(key, expect_revision=expect_revision))

    def items(self, prefix: Key = ()) -> list[StateEntry]:
        return PORTAL.call(self._s.items(prefix))

    def keys(self, prefix: Key = ()) -> list[tuple[str, ...]]:
        return PORTAL.call(self._s.keys(prefix))

    def purge(self, prefix: Key = ()) -> int:
        return PORTAL.call(self._s.purge(prefix))

    def watch(self, prefix: Key = (), *, include_existing: bool = False) -> SyncStateWatch:
        return SyncStateWatch(self._s.watch(prefix, include_existing=include_existing))


__all__ = ["SyncStateStore", "SyncStateWatch"]
