"""Shared fixtures: every test talks to a real nats-server started by the project's launcher."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mailslot_broker import NatsServer

import mailslot

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test may touch the user's real local broker."""
    home = tmp_path_factory.mktemp("mailslot-home")
    monkeypatch.setenv("MAILSLOT_HOME", str(home))
    monkeypatch.delenv("MAILSLOT_URL", raising=False)
    monkeypatch.delenv("MAILSLOT_CREDENTIALS", raising=False)
    return home


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server (port 0, 127.0.0.1, JetStream in tmp_path), stopped afterwards."""
    srv = NatsServer(tmp_path / "nats")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def client_env(server: NatsServer) -> dict[str, str]:
    """Environment for a child process that should use ``server``."""
    creds = server.workdir / "client-credentials.json"
    server.credentials.write(creds)
    env = dict(os.environ)
    env["MAILSLOT_URL"] = server.url
    env["MAILSLOT_CREDENTIALS"] = str(creds)
    env["PYTHONPATH"] = str(ROOT / "tests") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
async def ms(server: NatsServer) -> AsyncIterator[mailslot.Mailslot]:
    c = server.credentials
    client = await mailslot.connect(server.url, user=c.user, password=c.password, name="tester")
    try:
        yield client
    finally:
        await client.close()


PYTHON = sys.executable
