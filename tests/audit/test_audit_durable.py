"""The audit is per tenant, and survives a server restart: records kept, recording resumes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import mailslot
import pytest
from mailslot_broker import NatsServer
from tenancy.conftest import tenants_server  # noqa: F401  (the ALPHA and BETA server)
from testsupport import wait_for


async def _exchange(ms: mailslot.Mailslot, box: mailslot.Mailbox, n: int, tag: str) -> list[str]:
    ids = [(await ms.send(box.address, f"{tag} {i}", sender=f"{tag}-sender")).id for i in range(n)]
    for _ in range(n):
        await (await box.receive(timeout=10)).ack()
    return ids


async def _history(ms: mailslot.Mailslot, n: int) -> dict[str, list[str]]:
    """Every message's kinds once ``n`` messages are stored and acked, else {}."""
    out: dict[str, list[str]] = {}
    for r in await ms.audit.query():
        out.setdefault(r.message_id or "", []).append(r.kind)
    done = len(out) == n and all(k == ["stored", "acked"] for k in out.values())
    return out if done else {}


async def test_records_survive_a_restart_and_recording_resumes(
    server: NatsServer, ms: mailslot.Mailslot
) -> None:
    await ms.audit.enable()
    box = await ms.open("bob")
    try:
        before = await _exchange(ms, box, 50, "before")
        await wait_for(lambda: _history(ms, 50))
        await asyncio.to_thread(server.restart, kill=True)
        after = await _exchange(ms, box, 50, "after")
    finally:
        await box.close()
    history = await wait_for(lambda: _history(ms, 100), timeout=30)
    assert set(history) == set(before) | set(after)


async def test_per_tenant(tenants_server: NatsServer, tmp_path: Path) -> None:  # noqa: F811
    clients = {}
    for t in ("ALPHA", "BETA"):
        path = tenants_server.credentials_for(t).write(tmp_path / f"{t}.json")
        clients[t] = await mailslot.connect(tenants_server.url, credentials=path)
    a, b = clients["ALPHA"], clients["BETA"]
    try:
        await a.audit.enable()
        boxes = {t: await c.open("bob") for t, c in clients.items()}
        ids_a = await _exchange(a, boxes["ALPHA"], 5, "alpha")
        await _exchange(b, boxes["BETA"], 5, "beta")
        for box in boxes.values():
            await box.close()
        history = await wait_for(lambda: _history(a, 5))
        assert set(history) == set(ids_a)  # nothing of BETA's, though the addresses are the same
        with pytest.raises(mailslot.AuditDisabled):
            await b.audit.query()
    finally:
        for c in clients.values():
            await c.close()
