"""An mq9 client as the mq9 SDK speaks the wire (robustmq/mq9 python/mq9/client.py): raw
nats-py requests, with headers sent by publish-with-reply and the first answer read."""

from __future__ import annotations

import base64
import json
from typing import Any

import nats
from nats.aio.client import Client as NatsClient

PREFIX = "$mq9.AI"


class Mq9:
    def __init__(self, nc: NatsClient) -> None:
        self.nc = nc

    async def raw(
        self, subject: str, data: bytes, headers: dict[str, str] | None = None, timeout: float = 10
    ) -> Any:
        """The decoded reply (whatever JSON it is) to ``data`` on ``$mq9.AI.<subject>``."""
        full = f"{PREFIX}.{subject}"
        if not headers:
            msg = await self.nc.request(full, data, timeout=timeout)
            return json.loads(msg.data)
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox, max_msgs=1)
        try:
            await self.nc.publish(full, data, reply=inbox, headers=headers)
            msg = await sub.next_msg(timeout=timeout)
        finally:
            await sub.unsubscribe()
        return json.loads(msg.data)

    async def call(
        self, subject: str, body: Any = None, headers: dict[str, str] | None = None, **kw: Any
    ) -> dict:
        data = body if isinstance(body, bytes) else json.dumps(body if body is not None else {}).encode()
        out = await self.raw(subject, data, headers, **kw)
        assert isinstance(out, dict) and isinstance(out.get("error"), str), out
        return out

    async def ok(
        self, subject: str, body: Any = None, headers: dict[str, str] | None = None, **kw: Any
    ) -> dict:
        out = await self.call(subject, body, headers, **kw)
        assert out["error"] == "", out
        return out

    async def create(self, name: str | None = None, ttl: int = 0) -> str:
        body: dict[str, Any] = {"ttl": ttl}
        if name is not None:
            body["name"] = name
        return (await self.ok("MAILBOX.CREATE", body))["mail_address"]

    async def send(self, addr: str, payload: Any, **headers: Any) -> int:
        data = (
            payload
            if isinstance(payload, bytes)
            else json.dumps(payload).encode()
            if isinstance(payload, dict)
            else str(payload).encode()
        )
        hdrs = {f"mq9-{k}": str(v) for k, v in headers.items()}
        return (await self.ok(f"MSG.SEND.{addr}", data, hdrs))["msg_id"]

    async def fetch(
        self,
        addr: str,
        *,
        group: str | None = None,
        deliver: str = "earliest",
        num: int = 100,
        wait_ms: int = 0,
        force: bool = False,
        **extra: Any,
    ) -> list[dict]:
        body: dict[str, Any] = {
            "deliver": deliver,
            "force_deliver": force,
            "config": {"num_msgs": num, "max_wait_ms": wait_ms},
            **extra,
        }
        if group is not None:
            body["group_name"] = group
        return (await self.ok(f"MSG.FETCH.{addr}", body, timeout=max(10, wait_ms / 1000 + 5)))["messages"]

    async def ack(self, addr: str, group: str, msg_id: int) -> None:
        await self.ok(f"MSG.ACK.{addr}", {"group_name": group, "mail_address": addr, "msg_id": msg_id})


def payloads(messages: list[dict]) -> list[bytes]:
    return [base64.b64decode(m["payload"]) for m in messages]


def texts(messages: list[dict]) -> list[str]:
    return [p.decode() for p in payloads(messages)]


async def connect(server: Any) -> NatsClient:
    c = server.credentials
    return await nats.connect(server.url, user=c.user, password=c.password)
