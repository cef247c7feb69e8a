"""Plain helpers for tests (importable as ``testsupport``; conftest modules are not)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mailslot_broker import NatsServer

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def client_env(server: NatsServer) -> dict[str, str]:
    """Environment for a child process that should use ``server``."""
    creds = server.workdir / "client-credentials.json"
    server.credentials.write(creds)
    env = dict(os.environ)
    env["MAILSLOT_URL"] = server.url
    env["MAILSLOT_CREDENTIALS"] = str(creds)
    env["COLUMNS"] = "200"  # CLI tables (rich) shorten cells in a narrow non-terminal
    env["PYTHONPATH"] = str(ROOT / "tests") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def unique(name: str) -> str:
    """``name`` with a random suffix: an address (or topic token) that no other test uses, for
    tests on the session's shared server (``shared_server`` / ``shared_ms`` in conftest)."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


async def wait_for(
    cond: Callable[[], Awaitable[Any] | Any], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll ``cond`` (a plain or async callable) until it returns something truthy, and return
    that; fail with a clear message after ``timeout``. For state that settles in the background
    (a sidecar's sweep, a reconnect) and has no event to await."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
