"""How a :class:`~mailslot_langgraph.Resumer` learns of threads that pause after it started.

On a :class:`~mailslot_langgraph.MailslotCheckpointer` the store pushes every stored
interrupt (``watch_interrupts``), so a thread paused in any process is watched within the
store's watch latency, without polling. A watch that breaks (the broker failing over) is
opened again, followed by a full scan for what was stored meanwhile. Other checkpointers
cannot push: for them it scans every ``rescan_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import mailslot

if TYPE_CHECKING:
    from .resumer import Resumer

log = logging.getLogger(__name__)

#: Seconds between attempts to re-open a broken watch.
RETRY = 1.0


async def follow_paused(resumer: Resumer, ready: asyncio.Event) -> None:
    """Run until cancelled: watch every thread whose interrupt is stored from now on."""
    watch = getattr(resumer.graph.checkpointer, "watch_interrupts", None)
    if watch is None:
        ready.set()
        while True:
            await asyncio.sleep(resumer.rescan_interval)
            try:
                await resumer.scan()
            except Exception:
                log.exception("rescanning the checkpointer failed")
    first = True
    while True:
        try:
            async with watch() as threads:
                if first:
                    ready.set()
                    first = False
                else:
                    await resumer.scan()  # what paused while the watch was down
                async for tid in threads:
                    await resumer._watch_quietly(tid)
        except mailslot.MailslotError as exc:
            if first:
                raise
            log.warning("the checkpointer's watch broke (%s); opening it again", exc)
            await asyncio.sleep(RETRY)
