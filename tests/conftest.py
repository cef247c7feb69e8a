"""Shared fixtures: every test talks to a real nats-server started by the project's launcher.

``server`` / ``ms`` give a test a fresh nats-server of its own: use them when the test restarts
or kills the server, or looks at state beyond its own addresses (consumer counts, stream totals,
the agent listing, dead letters of every address, reclaim). ``shared_server`` / ``shared_ms``
are one server for the whole session (one per xdist worker), for plain mailbox and broadcast
traffic on addresses and topics of the test's own (``testsupport.unique``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import mailslot
import pytest
from mailslot_broker import NatsServer
from testsupport import PYTHON, ROOT, client_env, unique  # noqa: F401  (re-exported for old imports)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test may touch the user's real local broker."""
    home = tmp_path_factory.mktemp("mailslot-home")
    monkeypatch.setenv("MAILSLOT_HOME", str(home))
    monkeypatch.delenv("MAILSLOT_URL", raising=False)
    monkeypatch.delenv("MAILSLOT_CREDENTIALS", raising=False)
    return home


def _running_server(workdir: Path) -> Iterator[NatsServer]:
    srv = NatsServer(workdir)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def _client_of(server: NatsServer) -> AsyncIterator[mailslot.Mailslot]:
    c = server.credentials
    client = await mailslot.connect(server.url, user=c.user, password=c.password, name="tester")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server (port 0, 127.0.0.1, JetStream in tmp_path), stopped afterwards."""
    yield from _running_server(tmp_path / "nats")


@pytest.fixture
async def ms(server: NatsServer) -> AsyncIterator[mailslot.Mailslot]:
    async for client in _client_of(server):
        yield client


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One nats-server (port 0, 127.0.0.1) for the session, stopped at its end. Tests on it
    must use addresses and topics nobody else uses (``unique("name")``)."""
    yield from _running_server(tmp_path_factory.mktemp("shared-nats"))


@pytest.fixture
async def shared_ms(shared_server: NatsServer) -> AsyncIterator[mailslot.Mailslot]:
    """A client of the shared server (named "tester", like ``ms``), closed after the test."""
    async for client in _client_of(shared_server):
        yield client
