"""Sync twins of the things that stream events: a topic subscription and an agent watch.
Part of :mod:`mailslot.sync` (import them from there). ``start`` is there for the twin's
sake: what ``subscribe`` and ``watch_agents`` return is listening already."""

from __future__ import annotations

from datetime import timedelta

from ._portal import PORTAL
from .broadcast import Broadcast, TopicSubscription
from .mailbox import AgentCard
from .registry import AgentEvent, AgentWatch


class SyncTopicSubscription:
    """Blocking twin of :class:`TopicSubscription` (from ``mailslot.sync``): iterate it, or
    call :meth:`next` with a timeout; ``with`` closes it."""

    def __init__(self, sub: TopicSubscription) -> None:
        self._s = sub

    @property
    def aio(self) -> TopicSubscription:
        return self._s

    @property
    def pattern(self) -> str:
        return self._s.pattern

    @property
    def closed(self) -> bool:
        return self._s.closed

    def start(self) -> SyncTopicSubscription:
        PORTAL.call(self._s.start())
        return self

    def next(self, *, timeout: float | timedelta | None = None) -> Broadcast:
        """The next event; :class:`Timeout` after ``timeout`` s, StopIteration once closed."""
        try:
            return PORTAL.call(self._s.next(timeout=timeout))
        except StopAsyncIteration:
            raise StopIteration from None

    def __iter__(self) -> SyncTopicSubscription:
        return self

    def __next__(self) -> Broadcast:
        return self.next()

    def close(self) -> None:
        PORTAL.call(self._s.close())

    def __enter__(self) -> SyncTopicSubscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncAgentWatch:
    """Blocking twin of :class:`AgentWatch` (from ``mailslot.sync``)."""

    def __init__(self, watch: AgentWatch) -> None:
        self._w = watch

    @property
    def aio(self) -> AgentWatch:
        return self._w

    @property
    def known(self) -> dict[str, AgentCard]:
        return self._w.known

    def start(self) -> SyncAgentWatch:
        PORTAL.call(self._w.start())
        return self

    def next(self, *, timeout: float | None = None) -> AgentEvent:
        try:
            return PORTAL.call(self._w.next(timeout=timeout))
        except StopAsyncIteration:
            raise StopIteration from None

    def __iter__(self) -> SyncAgentWatch:
        return self

    def __next__(self) -> AgentEvent:
        return self.next()

    def close(self) -> None:
        PORTAL.call(self._w.close())

    def __enter__(self) -> SyncAgentWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["SyncAgentWatch", "SyncTopicSubscription"]
