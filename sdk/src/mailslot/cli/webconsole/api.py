"""The console's HTTP side: one static page and a JSON + Server-Sent Events API (Starlette).

Every request needs the console's secret: ``?token=`` on the URL the console prints (which
also sets a same-site, HTTP-only cookie, so the page's own requests and its event stream carry
it), or ``Authorization: Bearer <secret>``; with ``login=(user, password)`` (the tenant's
credential) HTTP Basic with those works too, and the browser asks for them. Anything else
gets 401. Requests that change
something (requeue, purge) are POSTs that must also carry ``X-Mailslot-Console: 1``, a header
another site's page cannot add without the browser asking this server first, which it refuses.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ...errors import InvalidInput, MailslotError, MessageError
from ...message import Message
from ...tracing import trace_id_of
from ..mail import message_row
from .hub import Hub

#: The one header a POST must carry (see the module docstring).
CSRF_HEADER = "x-mailslot-console"
_PAGE = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
}


def _asset(name: str) -> bytes:
    return resources.files(__package__ or __name__).joinpath("static").joinpath(name).read_bytes()


class TokenGate:
    """ASGI middleware: 401 unless the request carries one of the accepted secrets."""

    def __init__(
        self, app: ASGIApp, *, secrets: list[str], cookie: str, login: tuple[str, str] | None = None
    ) -> None:
        self.app = app
        self.secrets = [s.encode() for s in secrets if s]
        self.cookie = cookie
        self.login = None if login is None else f"{login[0]}:{login[1]}".encode()

    def _basic_ok(self, auth: str) -> bool:
        if self.login is None or not auth.lower().startswith("basic "):
            return False
        try:
            given = base64.b64decode(auth[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self.login)

    def _ok(self, value: str | None) -> bool:
        if not value:
            return False
        given = value.encode()
        return any(hmac.compare_digest(given, s) for s in self.secrets)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        query = request.query_params.get("token")
        known = self._ok(query) or self._ok(bearer) or self._ok(request.cookies.get(self.cookie))
        if not known and not self._basic_ok(auth):
            ask = {"www-authenticate": 'Basic realm="mailslot console"'} if self.login else None
            refused = PlainTextResponse("401: this console needs its token (?token=...)", 401, headers=ask)
            await refused(scope, receive, send)
            return
        if self._ok(query):  # the printed URL: remember it for the page's own requests

            async def send_with_cookie(message: Any) -> None:
                if message["type"] == "http.response.start":
                    cookie = f"{self.cookie}={query}; Path=/; HttpOnly; SameSite=Strict"
                    message.setdefault("headers", []).append((b"set-cookie", cookie.encode()))
                await send(message)

            await self.app(scope, receive, send_with_cookie)
            return
        await self.app(scope, receive, send)


def _changing(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A POST that changes something: needs the console's header; SDK errors become JSON."""

    async def wrapped(request: Request) -> Response:
        if request.headers.get(CSRF_HEADER) != "1":
            return JSONResponse({"error": f"missing header {CSRF_HEADER}: 1"}, 403)
        try:
            return await handler(request)
        except (InvalidInput, MessageError) as exc:
            return JSONResponse({"error": str(exc)}, 400)

    return wrapped


def build_app(
    hub: Hub, *, secrets: list[str], cookie: str = "mailslot_console", login: tuple[str, str] | None = None
) -> ASGIApp:
    """The console's ASGI app over a started :class:`Hub` (the caller starts and closes it)."""
    ms = hub.ms

    async def page(request: Request) -> Response:
        name, media = _PAGE[request.url.path]
        return Response(_asset(name), media_type=media, headers={"cache-control": "no-store"})

    async def state(request: Request) -> Response:
        return JSONResponse(hub.state())

    async def related(key: str, value: str, of: Callable[[Message], str | None]) -> Response:
        """Everything known of one thread or trace: waiting in any mailbox, dead, seen lately."""
        waiting = []
        for row in hub.mailboxes:
            if row["total"]:
                for m in await ms.inspect(row["address"]).peek(500):
                    if of(m) == value:
                        waiting.append({**message_row(m), "trace_id": trace_id_of(m.headers)})
        dead = [d for d in hub.dead if d.get(key) == value]
        seen = [e for e in hub.tail if e.get(key) == value]
        return JSONResponse({key: value, "waiting": waiting, "dead": dead, "seen": seen})

    async def thread(request: Request) -> Response:
        return await related("thread_id", request.path_params["thread_id"], lambda m: m.thread_id)

    async def trace(request: Request) -> Response:
        """The mail of one trace (its ``traceparent``'s trace id): a task across agents."""
        return await related("trace_id", request.path_params["trace_id"], lambda m: trace_id_of(m.headers))

    @_changing
    async def requeue(request: Request) -> Response:
        receipt = await ms.dead_letters.requeue(int(request.path_params["seq"]))
        hub.changed()
        if receipt is None:
            return JSONResponse({"requeued": False, "reason": "no longer in dead letters"})
        return JSONResponse({"requeued": True, "id": receipt.id, "to": receipt.to, "seq": receipt.seq})

    @_changing
    async def purge(request: Request) -> Response:
        address = request.query_params.get("address") or None
        n = await ms.dead_letters.purge(address)
        hub.changed()
        return JSONResponse({"purged": n, "address": address})

    async def events(request: Request) -> Response:
        queue = hub.subscribe()

        async def stream() -> AsyncIterator[dict[str, str]]:
            try:
                yield {"event": "state", "data": json.dumps(hub.state())}
                while True:
                    event, data = await queue.get()
                    if event == "bye":
                        return
                    yield {"event": event, "data": json.dumps(data)}
            finally:
                hub.unsubscribe(queue)

        return EventSourceResponse(stream(), ping=15)

    routes = [
        *(Route(path, page) for path in _PAGE),
        Route("/api/state", state),
        Route("/api/thread/{thread_id}", thread),
        Route("/api/trace/{trace_id}", trace),
        Route("/api/dead-letters/{seq:int}/requeue", requeue, methods=["POST"]),
        Route("/api/dead-letters/purge", purge, methods=["POST"]),
        Route("/api/events", events),
    ]

    async def on_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, 502)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await hub.close()  # ends the event streams, so the server can stop without waiting

    inner = Starlette(routes=routes, exception_handlers={MailslotError: on_error}, lifespan=lifespan)
    return TokenGate(inner, secrets=secrets, cookie=cookie, login=login)


async def serve(
    ms: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    secrets: list[str],
    login: tuple[str, str] | None = None,
    ready: Callable[[str, int], None] | None = None,
) -> None:
    """Run the console on ``host:port`` (0 = any free port) until cancelled or signalled;
    ``ready(host, port)`` is called once it listens, with the port it got."""
    import socket

    import uvicorn

    hub = Hub(ms)
    await hub.start()
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
        bound = sock.getsockname()[1]
        app = build_app(hub, secrets=secrets, cookie=f"mailslot_console_{bound}", login=login)
        config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        server = uvicorn.Server(config)
        if ready is not None:
            ready(host, bound)
        with sock:
            await server.serve(sockets=[sock])
    finally:
        with contextlib.suppress(Exception):
            await hub.close()


__all__ = ["CSRF_HEADER", "TokenGate", "build_app", "serve"]
