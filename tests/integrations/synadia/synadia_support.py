"""Helpers for the Synadia bridge tests: raw protocol frames, discovery and waiting."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from nats.aio.client import Client as NatsClient
from synadia_ai.agents import Agent, Agents, DiscoverFilter
from testsupport import wait_for


async def raw_prompt(
    nc: NatsClient, subject: str, data: bytes, *, timeout: float = 10.0, headers: dict[str, str] | None = None
) -> list[tuple[dict[str, str], bytes]]:
    """Every frame of one prompt stream on the wire, up to and with its terminator."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    frames: list[tuple[dict[str, str], bytes]] = []
    try:
        await nc.publish(subject, data, reply=inbox, headers=headers)
        while True:
            msg = await sub.next_msg(timeout=timeout)
            frames.append((dict(msg.headers or {}), msg.data))
            if not msg.data and not msg.headers:
                return frames
    finally:
        await sub.unsubscribe()


def error_of(frames: list[tuple[dict[str, str], bytes]]) -> tuple[int, str] | None:
    """The protocol error a stream carried (code and description), or None. The frame is
    the last before the terminator, with no ack or chunk after it."""
    for i, (headers, data) in enumerate(frames):
        if "Nats-Service-Error-Code" in headers:
            assert i == len(frames) - 2, frames
            if data:  # the front adds a JSON body; it says the same
                body: dict[str, Any] = json.loads(data)
                assert headers["Nats-Service-Error"].startswith(body["error"])
            return int(headers["Nats-Service-Error-Code"]), headers["Nats-Service-Error"]
    return None


async def discover(agents: Agents, name: str, *, timeout: float = 10.0) -> Agent:
    """The protocol agent whose session token is ``name``, once it is registered."""

    async def found() -> Agent | None:
        hits = await agents.discover(filter=DiscoverFilter(session_name=name), max_wait=0.3)
        return hits[0] if hits else None

    result = await wait_for(found, timeout=timeout)
    assert isinstance(result, Agent)
    return result


async def gone(agents: Agents, name: str, *, timeout: float = 10.0) -> None:
    async def absent() -> bool:
        return not await agents.discover(filter=DiscoverFilter(session_name=name), max_wait=0.3)

    await wait_for(absent, timeout=timeout)


__all__ = ["asyncio", "discover", "error_of", "gone", "raw_prompt"]
