"""Fixtures for tenancy: one real nats-server with several accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mailslot
import pytest
from mailslot_broker import NatsServer, TenantSpec


@pytest.fixture
def tenants_server(tmp_path: Path) -> Iterator[NatsServer]:
    """Tenants ALPHA and BETA (default permissions) on one server."""
    srv = NatsServer(tmp_path / "nats", tenants=[TenantSpec.generate("ALPHA"), TenantSpec.generate("BETA")])
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


async def connect_as(srv: NatsServer, tenant: str, tmp_path: Path, **kw: object) -> mailslot.Mailslot:
    """Connect through a credentials file, as a tenant's user would."""
    path = srv.credentials_for(tenant).write(tmp_path / f"{tenant}.json")
    return await mailslot.connect(srv.url, credentials=path, **kw)  # type: ignore[arg-type]
