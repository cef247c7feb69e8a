"""Running mailbox coroutines from whatever thread or loop a framework calls us on.

A nats connection is bound to the event loop it was made on. LangGraph runs async nodes and
tools on the caller's loop and sync ones in worker threads, so every mailbox call goes
through a :class:`LoopBridge`: awaited directly when we are already on the mailbox's loop,
submitted with ``run_coroutine_threadsafe`` otherwise, and refused (instead of deadlocking)
when a *sync* call is made on the mailbox loop's own thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import mailslot

T = TypeVar("T")


def _sync_twin_loop() -> asyncio.AbstractEventLoop:
    """The loop behind ``mailslot.sync``."""
    from mailslot import sync

    return sync.event_loop()


def unwrap(mailbox: Any) -> tuple[mailslot.Mailbox, asyncio.AbstractEventLoop | None]:
    """(async mailbox, its loop if known) for a Mailbox or a sync-twin SyncMailbox."""
    if isinstance(mailbox, mailslot.Mailbox):
        try:
            return mailbox, asyncio.get_running_loop()
        except RuntimeError:
            return mailbox, None
    aio = getattr(mailbox, "aio", None)
    if isinstance(aio, mailslot.Mailbox):
        return aio, _sync_twin_loop()
    raise TypeError(f"expected a mailslot Mailbox or SyncMailbox, got {type(mailbox).__name__}")


class LoopBridge:
    """Calls coroutine factories on ``loop`` from sync or async code, in any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop

    def _target(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            raise RuntimeError(
                "the mailbox's event loop is unknown: create the tools/nodes inside the loop "
                "that opened the mailbox, or pass loop="
            )
        return self.loop

    async def run(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Await on the mailbox loop, hopping loops if the caller is on another one."""
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - run() is always awaited
            here = None
        if self.loop is None or here is self.loop:
            return await factory()
        fut = asyncio.run_coroutine_threadsafe(factory(), self._target())
        return await asyncio.wrap_future(fut)

    def call(self, factory: Callable[[], Coroutine[Any, Any, T]], *, timeout: float | None = None) -> T:
        """Block until the coroutine finished on the mailbox loop."""
        target = self._target()
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is target:
            raise RuntimeError(
                "a sync Mailslot tool/node was called on the mailbox's own event loop thread, "
                "which would deadlock: use ainvoke/astream, or a mailbox from mailslot.sync"
            )
        return asyncio.run_coroutine_threadsafe(factory(), target).result(timeout)
