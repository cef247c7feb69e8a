"""Fixtures for the LangGraph integration: two agents' mailboxes on a real nats-server, and a
responder that answers requests the way a remote agent would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import mailslot
import pytest
from lg_helpers import Responder


@pytest.fixture(autouse=True)
def _no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
async def planner(ms: mailslot.Mailslot) -> AsyncIterator[mailslot.Mailbox]:
    mb = await ms.open("planner", ttl=60)
    yield mb
    await mb.close()


@pytest.fixture
async def coder(ms: mailslot.Mailslot) -> AsyncIterator[mailslot.Mailbox]:
    mb = await ms.open("coder", ttl=60)
    yield mb
    await mb.close()


@pytest.fixture
async def responder(coder: mailslot.Mailbox) -> AsyncIterator[Callable[..., Responder]]:
    made: list[Responder] = []

    def make(answer: Callable[[Any], Any]) -> Responder:
        r = Responder(coder, answer).start()
        made.append(r)
        return r

    yield make
    for r in made:
        await r.stop()
