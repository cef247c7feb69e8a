"""One background event loop in a thread, shared by every sync client in the process.

A nats connection is bound to the loop it was made on, so the sync twin never uses
``asyncio.run`` per call: it submits coroutines to this loop and waits for the result.
"""

from __future__ import annotations

import asyncio
import atexit
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import BlockingCall, MailslotError

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                ready = threading.Event()
                loop = asyncio.new_event_loop()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    ready.set()
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="mailslot-loop", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        loop = self.loop()
        if threading.current_thread() is self._thread:
            coro.close()
            raise MailslotError(
                "a sync Mailslot method was called from Mailslot's own event-loop thread; "
                "use the async API there"
            )
        if _blocks_a_running_loop():
            what = getattr(coro, "__qualname__", "call")
            coro.close()
            raise BlockingCall(
                f"{what}: a sync Mailslot method was called on a thread whose event loop is "
                "running, which it would block; await the async API there, or call the sync one "
                "from a worker thread (asyncio.to_thread)"
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def stop(self) -> None:
        with self._lock:
            if self._loop is not None and self._thread is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(5)
                self._loop.close()
            self._loop = None
            self._thread = None


def _blocks_a_running_loop() -> bool:
    """True on a thread with a running event loop, except a Jupyter kernel's main thread: a
    cell's sync code blocks the kernel's loop whatever it calls, and sync calls in a notebook
    are what the twin is for."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return not (_in_an_ipython_shell() and threading.current_thread() is threading.main_thread())


def _in_an_ipython_shell() -> bool:
    """A running IPython shell (a Jupyter kernel, ``ipython``), not merely the module loaded:
    a test process that ran a notebook has ``ipykernel`` imported without being one."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return callable(get) and get() is not None


PORTAL = LoopThread()
atexit.register(PORTAL.stop)
