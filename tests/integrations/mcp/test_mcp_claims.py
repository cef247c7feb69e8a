"""The claims tool over stdio: two agents race for one path, one wins and the other is told
who holds it; the claim frees itself when its TTL runs out."""

from __future__ import annotations

import time

import anyio
from conftest import Peer, stdio_peer
from mcp import types
from testsupport import unique, wait_for


async def _claim(peer: Peer, path: str, ttl: float) -> types.CallToolResult:
    return await peer.session.call_tool("claims", {"action": "claim", "paths": [path], "ttl": ttl})


async def test_two_agents_race_one_wins_the_other_sees_the_holder_expiry_frees_it(
    mcp_env: dict[str, str],
) -> None:
    alice, bob = unique("alice"), unique("bob")
    async with stdio_peer(mcp_env, alice) as a, stdio_peer(mcp_env, bob) as b:
        tool = next(t for t in (await a.session.list_tools()).tools if t.name == "claims")
        assert not {"holder", "agent", "sender", "me"} & set(tool.inputSchema.get("properties", {}))
        for round_ in range(5):
            path = f"src/{unique('race')}/file {round_}.py"
            results: dict[str, types.CallToolResult] = {}

            async def take(
                name: str, peer: Peer, path: str = path, results: dict[str, types.CallToolResult] = results
            ) -> None:
                results[name] = await _claim(peer, path, 30)

            async with anyio.create_task_group() as tg:
                tg.start_soon(take, alice, a)
                tg.start_soon(take, bob, b)
            won = [n for n, r in results.items() if not r.isError]
            lost = [r for r in results.values() if r.isError]
            assert len(won) == 1 and len(lost) == 1, results
            text = lost[0].content[0]
            assert isinstance(text, types.TextContent)
            assert "ClaimConflict: " in text.text and won[0] in text.text and path in text.text
            listed = (await b.call("claims", action="list", prefix=path))["claims"]
            assert [(c["key"], c["holder"]) for c in listed] == [(path, won[0])]
            winner = a if won[0] == alice else b
            assert (await winner.call("claims", action="release", paths=[path]))["released"] == [path]

        path = f"docs/{unique('x')}.md"
        (mine,) = (await a.call("claims", action="claim", paths=[path], ttl=1, reason="rewording"))["claims"]
        assert (mine["holder"], mine["reason"]) == (alice, "rewording")
        assert alice in await b.error("claims", action="claim", paths=[path], ttl=30)
        assert "ClaimNotHeld" in await b.error("claims", action="release", paths=[path])
        start = time.monotonic()

        async def bob_claims() -> bool:
            return not (await _claim(b, path, 30)).isError

        await wait_for(bob_claims, timeout=15, interval=0.1)  # free once alice's 1 s ran out
        assert time.monotonic() - start > 0.3
        (now,) = (await a.call("claims", action="list", prefix=path))["claims"]
        assert now["holder"] == bob
        assert "InvalidTTL" in await a.error("claims", action="claim", paths=["y"], ttl=0)
        assert "InvalidInput" in await a.error("claims", action="claim", paths=[])
