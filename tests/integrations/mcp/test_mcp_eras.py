"""What an mcp 2.x client finds at this mcp 1.30 server: its 2026-07-28 requests are refused
with a JSON-RPC error (the answer a client in mode "auto" falls back on), and the handshake era
that follows works on the same connection. Driven through the SDK's own streams and message
types; the probes are the method names mcp 2.x sends."""

from __future__ import annotations

from typing import Any

import anyio
from conftest import MAILSLOT_MCP, Peer
from mcp import StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.shared.message import SessionMessage
from testsupport import unique

#: The 2026-07-28 era's discovery probe and its resource subscription stream.
MODERN = [("server/discover", {}), ("subscriptions/listen", {"resourceSubscriptions": ["mailbox://x/inbox"]})]


async def test_modern_era_requests_are_refused_and_the_handshake_era_works(mcp_env: dict[str, str]) -> None:
    bob = unique("bob")
    params = StdioServerParameters(command=str(MAILSLOT_MCP), args=[], env={**mcp_env, "MAILSLOT_AGENT": bob})
    async with stdio_client(params) as (r, w):
        errors: dict[str, Any] = {}
        for n, (method, args) in enumerate(MODERN):
            rid = f"probe-{n}"
            request = types.JSONRPCRequest(jsonrpc="2.0", id=rid, method=method, params=args)
            await w.send(SessionMessage(types.JSONRPCMessage(request)))
            # The first answer waits for the server to start (imports and connect: ~4 s on a
            # quiet host, over 10 s with two suites beside it, where a 10 s bound failed).
            with anyio.fail_after(60 if n == 0 else 10):
                answer = await r.receive()
            assert isinstance(answer, SessionMessage)
            assert isinstance(answer.message.root, types.JSONRPCError), answer
            assert answer.message.root.id == rid
            errors[method] = answer.message.root.error.code
        assert errors == dict.fromkeys(["server/discover", "subscriptions/listen"], types.INVALID_PARAMS)
        async with Peer().connected(r, w) as peer:  # the fallback: initialize, then as usual
            result = await peer.session.list_tools()
            assert len(result.tools) == 10
            caps = peer.session.get_server_capabilities()
            assert caps is not None and caps.resources is not None
            assert caps.resources.subscribe is False  # hard-coded in mcp 1.30; subscribing works
            assert (await peer.call("inbox"))["mail"] == []
