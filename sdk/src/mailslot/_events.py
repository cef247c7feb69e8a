"""The queue behind every iterator of events the SDK hands out (topic subscriptions, mailbox
watches, registry and state watches): the producer puts events or a failure, ``close`` ends
it, and readers get the next one with a timeout. One copy, so every iterator ends, times out
and reports a failure the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar, cast

from .errors import Timeout

T = TypeVar("T")

_CLOSED = object()


class Events(Generic[T]):
    """Events of type ``T`` in order; an exception put in is raised to the reader that takes
    it. After :meth:`close`, every reader (now and later) gets ``StopAsyncIteration``."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._closed = False

    def put(self, item: T | BaseException) -> None:
        if not self._closed:
            self._queue.put_nowait(item)

    def close(self) -> None:
        """End the iteration once what was put before is read."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_CLOSED)

    async def next(self, timeout: float | None, *, nothing: Callable[[float], str]) -> T:
        """The next event. :class:`Timeout` with ``nothing(timeout)`` as its message when none
        comes within ``timeout`` s (None: wait for ever)."""
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Timeout(nothing(cast(float, timeout))) from None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # for the next reader
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return cast(T, item)

    def pending(self) -> int:
        """Events put and not read yet."""
        return max(0, self._queue.qsize() - (1 if self._closed else 0))


__all__ = ["Events"]
