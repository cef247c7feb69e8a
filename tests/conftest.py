"""Shared fixtures: every test talks to a real nats-server started by the project's launcher."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import mailslot
import pytest
from mailslot_broker import NatsServer
from testsupport import PYTHON, ROOT, client_env  # noqa: F401  (re-exported for old imports)


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


@pytest.fixture
async def ms(server: NatsServer) -> AsyncIterator[mailslot.Mailslot]:
    c = server.credentials
    client = await mailslot.connect(server.url, user=c.user, password=c.password, name="tester")
    try:
        yield client
    finally:
        await client.close()
