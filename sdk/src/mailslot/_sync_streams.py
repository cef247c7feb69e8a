"""Sync twins of the things that stream events: a topic subscription and an agent watch.
Part of :mod:`mailslot.sync` (import them from there). ``start`` is there for the twin's
sake: what ``subscribe`` and ``watch_agents`` return is listening already."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

from ._portal import PORTAL
from .broadcast import Broadcast, TopicSubscription
from .mailbox import AgentCard
from .registry import AgentEvent, AgentWatch

E = TypeVar("E", covariant=True)
A = TypeVar("A", bound="_Stream[Any]")
S = TypeVar("S", bound="_SyncStream[Any, Any]")


class _Stream(Protocol[E]):
    async def start(self) -> Any: ...
    async def next(self, *, timeout: Any = None) -> E: ...
    async def close(self) -> None: ...


class _SyncStream(Generic[A, E]):
    """Blocking iteration over an async stream of events: :meth:`next` with a timeout, or a
    ``for`` loop that ends once the stream is closed; ``with`` closes it."""

    def __init__(self, stream: A) -> None:
        self._aio = stream

    @property
    def aio(self) -> A:
        return self._aio

    def start(self: S) -> S:
        PORTAL.call(self._aio.start())
        return self

    def next(self, *, timeout: float | timedelta | None = None) -> E:
        """The next event; :class:`Timeout` after ``timeout`` s, StopIteration once closed."""
        try:
            return PORTAL.call(self._aio.next(timeout=timeout))
        except StopAsyncIteration:
            raise StopIteration from None

    def __iter__(self: S) -> S:
        return self

    def __next__(self) -> E:
        return self.next()

    def close(self) -> None:
        PORTAL.call(self._aio.close())

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyncTopicSubscription(_SyncStream[TopicSubscription, Broadcast]):
    """Blocking twin of :class:`TopicSubscription`."""

    @property
    def pattern(self) -> str:
        return self._aio.pattern

    @property
    def closed(self) -> bool:
        return self._aio.closed


class SyncAgentWatch(_SyncStream[AgentWatch, AgentEvent]):
    """Blocking twin of :class:`AgentWatch`."""

    @property
    def known(self) -> dict[str, AgentCard]:
        return self._aio.known


__all__ = ["SyncAgentWatch", "SyncTopicSubscription"]
