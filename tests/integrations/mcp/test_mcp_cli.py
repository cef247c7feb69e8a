"""``mailslot mcp`` (the SDK's CLI) serves the same MCP server over stdio as ``mailslot-mcp``."""

from __future__ import annotations

from conftest import Peer
from mcp import StdioServerParameters
from mcp.client.stdio import stdio_client
from testsupport import PYTHON, unique


async def test_mailslot_mcp_subcommand_serves_stdio(mcp_env: dict[str, str]) -> None:
    agent = unique("cli")
    params = StdioServerParameters(
        command=PYTHON, args=["-m", "mailslot", "mcp"], env={**mcp_env, "MAILSLOT_AGENT": agent}
    )
    async with stdio_client(params) as (r, w), Peer().connected(r, w) as peer:
        names = {t.name for t in (await peer.session.list_tools()).tools}
        assert {"send", "wait_for_mail", "claims"} <= names
        await peer.call("send", to=agent, body="to myself")
        (mail,) = (await peer.call("wait_for_mail", timeout=5))["mail"]
        assert (mail["from"], mail["body"]) == (agent, "to myself")
