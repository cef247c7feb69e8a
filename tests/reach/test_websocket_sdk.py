"""The core mailbox flows through the SDK over the WebSocket listener, beside the same flows
over plain ``nats://``: the transport must change nothing the application sees."""

from __future__ import annotations

import pytest
from mailslot_broker import NatsServer
from reach_support import client
from testsupport import unique


def _url(server: NatsServer, transport: str) -> str:
    return server.websocket_url if transport == "ws" else server.url


@pytest.fixture(params=["ws", "nats"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_websocket_url_is_ws(reach_server: NatsServer) -> None:
    assert reach_server.websocket_url.startswith("ws://127.0.0.1:")
    assert reach_server.mqtt_port != reach_server.port


async def test_send_receive_ack(reach_server: NatsServer, transport: str) -> None:
    ms = await client(reach_server, _url(reach_server, transport))
    try:
        address = unique("ws-agent")
        mb = await ms.open(address)
        receipt = await ms.send(address, {"n": 1}, sender="ws-sender")
        msg = await mb.receive(timeout=5)
        assert msg.json() == {"n": 1}
        assert msg.sender == "ws-sender"
        assert msg.id == receipt.id
        await msg.ack()
        await mb.close()
        again = await ms.open(address)
        assert await again.peek() == []  # acked: gone from the mailbox
        await again.destroy()
    finally:
        await ms.close()


async def test_receive_by_priority(reach_server: NatsServer, transport: str) -> None:
    ms = await client(reach_server, _url(reach_server, transport))
    try:
        address = unique("ws-prio")
        mb = await ms.open(address)
        for prio in ("low", "normal", "critical", "urgent"):
            await ms.send(address, prio, priority=prio)
        got = []
        for _ in range(4):
            msg = await mb.receive(timeout=5)
            got.append(msg.text())
            await msg.ack()
        assert got == ["critical", "urgent", "normal", "low"]
        await mb.destroy()
    finally:
        await ms.close()


async def test_unacked_is_redelivered_over_ws(reach_server: NatsServer) -> None:
    """A receiver on ws:// that does not ack leaves the mail in the mailbox for the next one."""
    ws = await client(reach_server, reach_server.websocket_url, name="ws-reader")
    tcp = await client(reach_server, reach_server.url, name="tcp-reader")
    try:
        address = unique("ws-redeliver")
        mb = await ws.open(address, ack_wait=1)
        await tcp.send(address, "once")
        first = await mb.receive(timeout=5)
        assert first.text() == "once"
        await first.nak()
        second = await mb.receive(timeout=5)
        assert second.text() == "once" and second.delivery_count == 2
        await second.ack()
        await mb.destroy()
    finally:
        await ws.close()
        await tcp.close()
