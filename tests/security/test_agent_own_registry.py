"""An agent credential lists and searches the registry through the sidecar (``mview.<address>``,
op ``agents``): the agents bucket is read by body (a batched direct get), which no subject
permission can scope, and cards are public inside a tenant, so the sidecar reads them and
answers a page at a time. ``agents()`` and ``discover()`` give an agent what they give the
tenant; no sidecar answering is ``Unavailable``."""

from __future__ import annotations

import json
import time

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.reclaim import lease_alive

from .conftest import until

V = p.views


def _view(cards) -> list[tuple[str | None, str | None, str | None]]:
    return [(c.address, c.status, c.description) for c in cards]


async def _listed(ms, address: str, **kw) -> bool:
    return address in [c.address for c in await ms.agents(**kw)]


async def test_an_agent_lists_and_discovers_agents_as_the_tenant_does(principals, tenant):
    alice = await principals.connect("alice")
    amb = await alice.open(
        "alice",
        ttl=30,
        card={
            "name": "Alice",
            "description": "translates French",
            "capabilities": ["translate"],
            "tags": ["fr"],
        },
    )
    carol = await principals.connect("carol")
    cmb = await carol.open("carol", ttl=1.0, card={"description": "writes poems", "capabilities": ["poetry"]})
    ops = await tenant.open("ops-desk", ttl=30, card={"description": "the tenant's desk"})
    try:
        await until(lambda: _listed(tenant, "alice"), within=3.0)
        await until(lambda: _listed(tenant, "carol"), within=3.0)
        await cmb.close()  # carol goes offline; her mailbox is kept
        await until(lambda: _not(lease_alive(tenant.js, "carol")), within=5.0)
        bob = await principals.connect("bob")
        for kw in (
            {},
            {"include_offline": True},
            {"capability": "translate"},
            {"tag": "fr"},
            {"capability": "poetry", "include_offline": True},
        ):
            theirs = await tenant.agents(**kw)
            assert _view(await bob.agents(**kw)) == _view(theirs), kw
        assert [c.address for c in await bob.agents()] == ["alice", "ops-desk"]
        offline = {c.address: c.status for c in await bob.agents(include_offline=True)}
        assert offline["carol"] == "offline" and offline["alice"] != "offline"
        assert [c.address for c in await bob.discover("french")] == ["alice"]
        assert [c.address for c in await bob.discover("poems", include_offline=True)] == ["carol"]
        assert await bob.discover("poems") == []
        assert _view(await bob.discover(None, limit=1, page=2)) == _view(
            await tenant.discover(None, limit=1, page=2)
        )
        started = time.monotonic()
        await bob.agents()
        print(f"agents() with an agent credential: {(time.monotonic() - started) * 1000:.1f} ms")
    finally:
        await amb.close()
        await ops.close()


async def _not(aw) -> bool:
    return not await aw


async def test_a_listing_pages_past_one_sidecar_answer(principals, tenant):
    n = V.MAX_AGENTS_BATCH + 30
    kv = await tenant.js.key_value(p.AGENTS_BUCKET)
    for i in range(n):
        await kv.put(f"bulk{i:04d}", json.dumps({"address": f"bulk{i:04d}", "tags": ["bulk"]}).encode())
    bob = await principals.connect("bob")
    got = [c.address for c in await bob.agents(tag="bulk")]
    assert got == [f"bulk{i:04d}" for i in range(n)]
    assert got == [c.address for c in await tenant.agents(tag="bulk")]
    assert len(await bob.discover("bulk", limit=1000)) == n


async def test_a_listing_without_a_sidecar_is_unavailable(principals, tenant):
    await principals.stop_views()
    bob = await principals.connect("bob")
    for call in (bob.agents, lambda: bob.discover("x")):
        started = time.monotonic()
        with pytest.raises(mailslot.Unavailable, match="sidecar"):
            await call()
        assert time.monotonic() - started < 3.0


async def test_a_bad_listing_request_is_answered_with_400(principals, tenant):
    nc = (await principals.connect("bob")).nc
    for body in (
        {"op": "agents", "after": 7},
        {"op": "agents", "include_offline": "yes"},
        {"op": "agents", "batch": 0},
    ):
        reply = await nc.request(V.view_subject("bob"), json.dumps(body).encode(), timeout=5)
        assert reply.headers["Status"] == "400", body
