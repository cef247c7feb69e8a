"""Fixtures for the MCP server tests: real servers (``python -m mailslot_mcp``) driven by the
MCP SDK's own client, over stdio and streamable HTTP, on the session's shared nats-server."""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mailslot_broker import NatsServer
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage
from mcp.shared.session import RequestResponder
from mcp_http_proc import http_server_process
from testsupport import PYTHON, client_env, unique

#: The console script, installed beside the interpreter.
MAILSLOT_MCP = Path(PYTHON).with_name("mailslot-mcp")

ServerMessage = (
    RequestResponder[types.ServerRequest, types.ClientResult] | types.ServerNotification | Exception
)


@dataclass
class Peer:
    """One agent's MCP client session, with the resource updates the server pushed to it."""

    session: ClientSession = field(init=False)
    updates: list[str] = field(default_factory=list)
    updated: anyio.Event = field(default_factory=anyio.Event)

    @contextlib.asynccontextmanager
    async def connected(
        self,
        r: MemoryObjectReceiveStream[SessionMessage | Exception],
        w: MemoryObjectSendStream[SessionMessage],
    ) -> AsyncIterator[Peer]:
        async with ClientSession(r, w, message_handler=self._on_message) as self.session:
            await self.session.initialize()
            yield self

    async def _on_message(self, message: ServerMessage) -> None:
        if isinstance(message, types.ServerNotification) and isinstance(
            message.root, types.ResourceUpdatedNotification
        ):
            self.updates.append(str(message.root.params.uri))
            self.updated.set()

    async def call(self, tool: str, **args: Any) -> dict[str, Any]:
        result = await self.session.call_tool(tool, args)
        assert not result.isError, result.content
        assert result.structuredContent is not None
        return result.structuredContent

    async def error(self, tool: str, **args: Any) -> str:
        result = await self.session.call_tool(tool, args)
        assert result.isError, result.structuredContent
        text = result.content[0]
        assert isinstance(text, types.TextContent)
        return text.text

    async def wait_for_mail(
        self, into: list[float], started: anyio.Event | None = None, **args: Any
    ) -> dict[str, Any]:
        """``wait_for_mail``, its progress notifications collected ``into`` a list; ``started``
        is set at the first one, which the server sends once the wait is in place."""

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            into.append(progress)
            if started is not None:
                started.set()

        result = await self.session.call_tool("wait_for_mail", args, progress_callback=on_progress)
        assert not result.isError, result.content
        assert result.structuredContent is not None
        return result.structuredContent


@dataclass
class Wake:
    """One send from ``a`` that woke ``b``'s blocking wait, timed."""

    mail: list[dict[str, Any]]
    receipt: dict[str, Any]
    send_ms: float
    wake_ms: float  # from the send call to the wait's return


async def send_while_waiting(a: Peer, b: Peer, **send: Any) -> Wake:
    """``b`` blocks in ``wait_for_mail``; once it is in place, ``a`` sends."""
    got: dict[str, Any] = {}
    started = anyio.Event()
    woke_at = 0.0

    async def waiter() -> None:
        nonlocal woke_at
        got.update(await b.wait_for_mail([], started, timeout=20))
        woke_at = time.perf_counter()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        with anyio.fail_after(10):
            await started.wait()
        await anyio.sleep(0.2)
        sent_at = time.perf_counter()
        receipt = await a.call("send", **send)
        send_s = time.perf_counter() - sent_at
    return Wake(got["mail"], receipt, send_s * 1000, (woke_at - sent_at) * 1000)


@pytest.fixture
def mcp_env(shared_server: NatsServer) -> dict[str, str]:
    return client_env(shared_server)


@contextlib.asynccontextmanager
async def stdio_peer(env: dict[str, str], agent: str) -> AsyncIterator[Peer]:
    """``mailslot-mcp`` (the console script) for ``agent``, spawned over stdio the way a host
    spawns it; stopped when the block ends."""
    params = StdioServerParameters(command=str(MAILSLOT_MCP), args=[], env={**env, "MAILSLOT_AGENT": agent})
    async with stdio_client(params) as (r, w), Peer().connected(r, w) as peer:
        yield peer


@contextlib.asynccontextmanager
async def http_peer(url: str, token: str | None, *, terminate_on_close: bool = True) -> AsyncIterator[Peer]:
    """An MCP session over streamable HTTP; ``terminate_on_close=False`` leaves without the
    DELETE that ends the session (a client that crashed or lost its network)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=120)) as http,
        streamable_http_client(url, http_client=http, terminate_on_close=terminate_on_close) as (r, w, _),
        Peer().connected(r, w) as peer,
    ):
        yield peer


#: The test server's --idle and --lease-ttl: an agent quiet that long is let go, and shows
#: offline once its lease lapsed.
HTTP_IDLE = 2.0
HTTP_LEASE = 2.0


@dataclass
class HttpServer:
    url: str
    tokens: dict[str, str]
    proc: subprocess.Popen[bytes]


@pytest.fixture
def http_server(mcp_env: dict[str, str], tmp_path: Path) -> Iterator[HttpServer]:
    """``mailslot-mcp --http`` on a free 127.0.0.1 port with tokens for two agents (names
    unique per test), stopped after the test."""
    tokens = {unique("alice"): secrets.token_urlsafe(24), unique("bob"): secrets.token_urlsafe(24)}
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(tokens))
    quick = ["--idle", str(HTTP_IDLE), "--lease-ttl", str(HTTP_LEASE)]
    log = tmp_path / "mcp-http.log"
    with http_server_process(PYTHON, path, log, env=mcp_env, options=quick) as (url, proc):
        yield HttpServer(url, tokens, proc)
