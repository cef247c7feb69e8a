"""A tenant credential's SDK and the sidecar answering an agent credential list the registry
and keep the latest mail through one broker function each (``mailslot_broker.tenant_reads``),
so the two paths cannot drift apart."""

from __future__ import annotations

from typing import Any

from mailslot_broker import tenant_reads

from .conftest import until


def _counting(monkeypatch: Any, name: str) -> list[int]:
    calls: list[int] = []
    real = getattr(tenant_reads, name)

    async def counted(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        return await real(*args, **kw)

    monkeypatch.setattr(tenant_reads, name, counted)
    return calls


async def test_the_tenant_and_the_sidecar_list_the_registry_with_one_function(
    principals, tenant, monkeypatch
):
    calls = _counting(monkeypatch, "registry_cards")
    alice = await principals.connect("alice")
    mb = await alice.open("alice", ttl=30, card={"description": "translates"})
    try:
        await until(lambda: _listed(tenant), within=5.0)  # the card is sourced into the bucket
        assert calls
        before = len(calls)
        bob = await principals.connect("bob")
        assert [c.address for c in await bob.agents(include_offline=True)] == ["alice"]
        assert len(calls) == before + 1  # the sidecar's answer
    finally:
        await mb.close()


async def _listed(ms: Any) -> bool:
    return [c.address for c in await ms.agents()] == ["alice"]


async def test_the_tenant_and_the_sidecar_keep_the_latest_with_one_function(principals, tenant, monkeypatch):
    calls = _counting(monkeypatch, "delete_keyed")
    await tenant.send("alice", "ops v1", replace_key="k")
    await tenant.send("alice", "ops v2", replace_key="k")
    assert len(calls) == 2
    bob = await principals.connect("bob")
    await bob.send("alice", "bob v1", replace_key="k")
    await bob.send("alice", "bob v2", replace_key="k")
    assert len(calls) == 4

    async def texts() -> list[str]:
        return sorted(m.text() for m in await tenant.inspect("alice").peek())

    await until(lambda: _eq(texts(), ["bob v2", "ops v2"]), within=5.0)


async def _eq(got: Any, want: list[str]) -> bool:
    return await got == want
