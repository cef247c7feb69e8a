"""Background tasks the bridge starts and must leave stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from mailslot.tasks import cancel_and_wait


async def stop_tasks(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    """Cancel ``tasks`` and wait for each to end (cancelled again while one still runs: a
    receive can swallow one cancel, ``mailslot.tasks``); their outcomes are dropped."""
    await cancel_and_wait(tasks)
