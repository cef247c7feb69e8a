"""nats-py's WebSocket transport, made quiet and leak-free on aiohttp 3.11+."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


def patch_websocket_transport() -> None:
    """Make nats-py's ``ws://``/``wss://`` transport quiet and leak-free on aiohttp 3.11+:
    it passes a float ``timeout`` to ``ws_connect`` (a DeprecationWarning, an error under
    warnings-as-errors), leaves its ``ClientSession`` open when the handshake fails, and on
    close leaves a TLS socket to aiohttp's SSL shutdown, which can outlive the event loop (an
    unclosed-socket ResourceWarning): once the WebSocket close handshake is done the socket
    is aborted. Idempotent; a no-op without aiohttp."""
    try:
        import aiohttp
        from nats.aio import transport
    except ImportError:  # pragma: no cover - the websocket extra is not installed
        return
    cls = transport.WebSocketTransport
    if getattr(cls, "_mailslot_patched", False):
        return

    async def _dial(self: Any, url: str, connect_timeout: float, **kw: Any) -> None:
        try:
            self._ws = await self._client.ws_connect(
                url,
                timeout=aiohttp.ClientWSTimeout(ws_close=connect_timeout),
                headers=self._get_custom_headers(),
                max_msg_size=0,
                **kw,
            )
        except BaseException:
            await self._client.close()
            raise
        conn = getattr(self._ws, "_conn", None)  # aiohttp's Connection: its transport
        self._mailslot_transport = getattr(conn, "transport", None)

    wait_closed_before = cls.wait_closed

    async def wait_closed(self: Any) -> None:
        await wait_closed_before(self)
        tr = getattr(self, "_mailslot_transport", None)
        if tr is not None:
            tr.abort()
            self._mailslot_transport = None
            await asyncio.sleep(0)  # abort closes the socket on the next loop iteration

    async def connect(self: Any, uri: Any, buffer_size: int, connect_timeout: float) -> None:
        await _dial(self, uri.geturl(), connect_timeout)
        self._using_tls = False

    async def connect_tls(
        self: Any, uri: Any, ssl_context: Any, buffer_size: int, connect_timeout: float
    ) -> None:
        if self._ws and not self._ws.closed:
            if self._using_tls:
                return
            raise transport.ProtocolError("ws: cannot upgrade to TLS")
        await _dial(self, uri if isinstance(uri, str) else uri.geturl(), connect_timeout, ssl=ssl_context)
        self._using_tls = True

    cls.wait_closed = wait_closed  # type: ignore[method-assign]
    cls.connect = connect  # type: ignore[method-assign]
    cls.connect_tls = connect_tls  # type: ignore[method-assign]
    cls._mailslot_patched = True  # type: ignore[attr-defined]
