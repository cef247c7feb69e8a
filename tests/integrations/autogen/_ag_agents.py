"""Unchanged RoutedAgents (nothing Mailslot-specific) used by the runtime tests, in and out of
process. Run as a script it hosts them: ``python _ag_agents.py <namespace> <stop-file> [TYPE]``
(TYPE "worker", the default, or "counter")."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autogen_core import MessageContext, RoutedAgent, TypeSubscription, event, rpc
from pydantic import BaseModel


@dataclass
class Task:
    body: str


class Done(BaseModel):
    body: str
    by: str


@dataclass
class News:
    text: str


class Worker(RoutedAgent):
    def __init__(self) -> None:
        super().__init__("does tasks")
        self.news: list[str] = []

    @rpc
    async def on_task(self, message: Task, ctx: MessageContext) -> Done:
        if message.body == "explode":
            raise ValueError("cannot do that")
        return Done(body=f"did {message.body} for {ctx.sender}", by=str(self.id))

    @event
    async def on_news(self, message: News, ctx: MessageContext) -> None:
        self.news.append(f"{message.text}@{ctx.topic_id.source if ctx.topic_id else '?'}")
        if message.text == "boom":
            raise RuntimeError("event handler failed")


class Boss(RoutedAgent):
    """Delegates to a worker through the runtime: an agent-to-agent call across processes."""

    def __init__(self) -> None:
        super().__init__("delegates")

    @rpc
    async def on_task(self, message: Task, ctx: MessageContext) -> Done:
        from autogen_core import AgentId

        done = await self.send_message(Task(f"{message.body} (delegated)"), AgentId("worker", "w9"))
        return Done(body=f"boss: {done.body}", by=str(self.id))


@dataclass
class Add:
    n: int
    pad: int = 0  # grow the state by this many bytes


class Count(BaseModel):
    value: int
    by: str


class Counter(RoutedAgent):
    """An agent with state: a running total (and padding, to test the state's size limit)."""

    def __init__(self) -> None:
        super().__init__("counts")
        self.total = 0
        self.pad = ""

    @rpc
    async def on_add(self, message: Add, ctx: MessageContext) -> Count:
        self.total += message.n
        if message.pad:
            self.pad = "x" * message.pad
        return Count(value=self.total, by=str(self.id))

    async def save_state(self) -> Mapping[str, Any]:
        return {"total": self.total, "pad": self.pad}

    async def load_state(self, state: Mapping[str, Any]) -> None:
        self.total = int(state["total"])
        self.pad = str(state.get("pad", ""))


async def host(namespace: str, stop_file: str, agent_type: str = "worker") -> None:
    """Host the worker (or counter) type until ``stop_file`` appears."""
    from pathlib import Path

    import mailslot
    from mailslot_autogen import MailslotAgentRuntime

    async with mailslot.connect(name="host") as ms:
        rt = MailslotAgentRuntime(ms, namespace=namespace)
        if agent_type == "counter":
            await Counter.register(rt, "counter", Counter)
        else:
            await Worker.register(rt, "worker", Worker)
            await rt.add_subscription(TypeSubscription("news", "worker"))
        print("host ready", flush=True)
        while not Path(stop_file).exists():  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.05)
        await rt.idle()
        await rt.stop()
        print("host done", flush=True)


if __name__ == "__main__":
    asyncio.run(host(*sys.argv[1:4]))
