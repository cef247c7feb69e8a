"""The one place that knows which mcp line is installed.

mcp 1.x (FastMCP) serves the handshake era only; mcp 2.x (MCPServer) serves both the
handshake era (``initialize``, up to 2025-11-25) and 2026-07-28 (per-request envelopes, no
session). Everything else in this package is written once against what is common to both:
the tool and resource decorators, ``Context.report_progress``, ``ToolError``, the token
verifier. What differs lives here:

- building the server and running it (2.x takes host and port at run time);
- the request a call answers, for the HTTP identity fallback (1.x only; 2.x relies on the
  auth context variable, which reaches its handlers);
- resource change notifications: ``resources/subscribe`` in the handshake era (a handler on
  the low-level server, notified through the session), and on 2.x also
  ``subscriptions/listen`` in the 2026 era, fed by publishing ``ResourceUpdated`` on the
  server's ``SubscriptionBus``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

import mailslot
from mcp.server.auth.settings import AuthSettings

#: True when the installed mcp is the 2.x line (MCPServer, both protocol eras).
MCP2 = find_spec("mcp.server.mcpserver") is not None

if TYPE_CHECKING or not MCP2:
    from mcp.server.fastmcp import Context, FastMCP
    from mcp.server.fastmcp.exceptions import ResourceError, ToolError

    App = FastMCP[Any]
    Ctx = Context[Any, Any, Any]
else:  # pragma: no cover - checked by the tests that run in .venv-mcp2
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError

    App = MCPServer[Any]
    Ctx = Context[Any, Any]

__all__ = [
    "MCP2",
    "App",
    "Ctx",
    "ResourceError",
    "ToolError",
    "make_app",
    "request_of",
    "run_http",
    "run_stdio",
    "serve_resource_updates",
]

#: Notifies one subscriber that a resource URI changed.
Notify = Callable[[str], Awaitable[None]]
#: ``(uri, key, notify)``: check the caller may watch ``uri``, then start notifying.
OnSubscribe = Callable[[str, int, Notify], Awaitable[None]]
#: ``(uri, key)``: stop notifying that subscriber.
OnUnsubscribe = Callable[[str, int], Awaitable[None]]


def make_app(*, name: str, instructions: str, host: str, port: int, token_verifier: Any | None) -> App:
    """The server object; with ``token_verifier``, every HTTP request needs a bearer token."""
    auth: dict[str, Any] = {}
    if token_verifier is not None:
        auth = {
            "token_verifier": token_verifier,
            "auth": AuthSettings(
                issuer_url=f"http://{host}:{port}",  # type: ignore[arg-type]
                resource_server_url=None,
                validate_token_resource=False,  # the verifier maps the token to an agent itself
            ),
        }
    if MCP2:
        from mcp.server.mcpserver import MCPServer as Server2

        return Server2(name, instructions=instructions, log_level="WARNING", **auth)
    return FastMCP(name, instructions=instructions, host=host, port=port, log_level="WARNING", **auth)


async def run_stdio(app: App) -> None:
    await app.run_stdio_async()


async def run_http(app: App, *, host: str, port: int) -> None:
    if MCP2:
        await app.run_streamable_http_async(host=host, port=port)  # type: ignore[call-arg]
    else:
        await app.run_streamable_http_async()


def request_of(app: App) -> Any:
    """The HTTP request the current call answers, where the line exposes it (1.x), else
    None (stdio, or 2.x, whose auth context variable reaches every handler)."""
    if MCP2:
        return None
    try:
        return app.get_context().request_context.request
    except (LookupError, ValueError):
        return None


def serve_resource_updates(app: App, subscribe: OnSubscribe, unsubscribe: OnUnsubscribe) -> None:
    """Register the era-specific ways a client asks for resource change notifications;
    each of them calls ``subscribe(uri, key, notify)`` and later ``unsubscribe(uri, key)``."""
    if MCP2:
        _serve_mcp2(app, subscribe, unsubscribe)
    else:
        _serve_mcp1(app, subscribe, unsubscribe)


def _serve_mcp1(app: App, subscribe: OnSubscribe, unsubscribe: OnUnsubscribe) -> None:
    """FastMCP has no subscription API: the low-level server's decorators register the
    handlers (1.30 still advertises ``subscribe=False``, hard-coded; subscribing works)."""
    from pydantic import AnyUrl

    lowlevel = app._mcp_server

    @lowlevel.subscribe_resource()
    async def on_subscribe(uri: AnyUrl) -> None:
        session = lowlevel.request_context.session

        async def notify(u: str) -> None:
            await session.send_resource_updated(AnyUrl(u))

        await subscribe(str(uri), id(session), notify)

    @lowlevel.unsubscribe_resource()
    async def on_unsubscribe(uri: AnyUrl) -> None:
        await unsubscribe(str(uri), id(lowlevel.request_context.session))


def _serve_mcp2(app: Any, subscribe: OnSubscribe, unsubscribe: OnUnsubscribe) -> None:  # pragma: no cover
    """Handshake era: ``resources/subscribe`` on the low-level server (MCPServer registers
    none; ``add_request_handler`` is the documented hook), notified through the session.
    2026 era: ``subscriptions/listen`` served by the SDK's ListenHandler over the server's
    bus, wrapped so that the first stream on a URI subscribes once for all streams (the
    bus fans out) and the last one to end unsubscribes."""
    import mcp_types
    from mcp.server.subscriptions import ListenHandler, ResourceUpdated
    from mcp.shared.exceptions import MCPError  # type: ignore[attr-defined]  # 2.x name

    lowlevel = app._lowlevel_server
    bus = app._subscriptions
    listen = ListenHandler(bus)
    streams: dict[str, int] = {}  # uri -> open listen streams

    async def _refused(step: Awaitable[None]) -> None:
        """An SDK error (someone else's mailbox) as a JSON-RPC error with its message."""
        try:
            await step
        except mailslot.MailslotError as exc:
            raise MCPError(mcp_types.INVALID_PARAMS, f"{type(exc).__name__}: {exc}") from None

    async def publish(uri: str) -> None:
        await bus.publish(ResourceUpdated(uri=uri))

    async def on_subscribe(ctx: Any, params: mcp_types.SubscribeRequestParams) -> mcp_types.EmptyResult:
        session = ctx.session
        await _refused(subscribe(str(params.uri), id(session), session.send_resource_updated))
        return mcp_types.EmptyResult()

    async def on_unsubscribe(ctx: Any, params: mcp_types.UnsubscribeRequestParams) -> mcp_types.EmptyResult:
        await unsubscribe(str(params.uri), id(ctx.session))
        return mcp_types.EmptyResult()

    async def on_listen(ctx: Any, params: mcp_types.SubscriptionsListenRequestParams) -> Any:
        uris = list(params.notifications.resource_subscriptions or [])
        opened: list[str] = []
        try:
            for uri in uris:
                if not streams.get(uri):
                    await _refused(subscribe(uri, id(bus), publish))
                streams[uri] = streams.get(uri, 0) + 1
                opened.append(uri)
            return await listen(ctx, params)
        finally:
            for uri in opened:
                streams[uri] -= 1
                if not streams[uri]:
                    del streams[uri]
                    await unsubscribe(uri, id(bus))

    add = lowlevel.add_request_handler
    add("resources/subscribe", mcp_types.SubscribeRequestParams, on_subscribe)
    add("resources/unsubscribe", mcp_types.UnsubscribeRequestParams, on_unsubscribe)
    add("subscriptions/listen", mcp_types.SubscriptionsListenRequestParams, on_listen)
