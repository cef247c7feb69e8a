"""Plain helpers for tests (importable as ``testsupport``; conftest modules are not)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

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
