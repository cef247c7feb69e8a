"""The MCP server (``mailslot-mcp``, stdio) with an agent credential: the agent's own mailbox
(peeked through the sidecar, received, acked) and sends work and are signed; what the
credential does not allow comes back as a tool error naming ``PermissionDenied``."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from testsupport import PYTHON

MAILSLOT_MCP = Path(PYTHON).with_name("mailslot-mcp")


async def test_mcp_stdio_with_an_agent_credential(principals):
    tenant = await principals.connect("tenant", name="ops")
    await tenant.send("bob", "task for bob")
    env = {
        **os.environ,
        "MAILSLOT_URL": principals.srv.url,
        "MAILSLOT_CREDENTIALS": str(principals.paths["bob"]),
        "MAILSLOT_AGENT": "bob",
    }
    params = StdioServerParameters(command=str(MAILSLOT_MCP), args=[], env=env)
    with anyio.fail_after(60):
        async with stdio_client(params) as (r, w), ClientSession(r, w) as session:
            await session.initialize()
            peeked = await session.call_tool("inbox", {})  # its own mailbox, through the sidecar
            assert not peeked.isError, peeked.content
            assert peeked.structuredContent is not None
            assert peeked.structuredContent["total"] == 1
            assert [m["body"] for m in peeked.structuredContent["mail"]] == ["task for bob"]
            got = await session.call_tool("wait_for_mail", {"timeout": 10})
            assert not got.isError, got.content
            assert got.structuredContent is not None
            [mail] = got.structuredContent["mail"]
            sent = await session.call_tool("send", {"to": "alice", "body": "done"})
            assert not sent.isError, sent.content
            listed = await session.call_tool("agents", {})  # the registry, through the sidecar
            assert not listed.isError, listed.content
            assert listed.structuredContent is not None
            assert "bob" in [a["address"] for a in listed.structuredContent["agents"]]
            acked = await session.call_tool("ack", {"ids": [mail["id"]]})
            assert not acked.isError, acked.content
    alice = await principals.connect("alice")
    mb = await alice.open("alice", ttl=30)
    m = await mb.receive(timeout=5)
    assert (m.text(), m.sender, m.sender_verified) == ("done", "bob", True)
    await m.ack()
    await mb.close()
    assert await tenant.inspect("bob").peek() == []
