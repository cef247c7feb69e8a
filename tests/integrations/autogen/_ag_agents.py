"""Unchanged RoutedAgents (nothing Mailslot-specific) used by the runtime tests, in and out of
process. Run as a script it hosts them: ``python _ag_agents.py <namespace> <stop-file>``."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

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


async def host(namespace: str, stop_file: str) -> None:
    """Host the worker type until ``stop_file`` appears."""
    from pathlib import Path

    import mailslot
    from mailslot_autogen import MailslotAgentRuntime

    async with mailslot.connect(name="host") as ms:
        rt = MailslotAgentRuntime(ms, namespace=namespace)
        await Worker.register(rt, "worker", Worker)
        await rt.add_subscription(TypeSubscription("news", "worker"))
        print("host ready", flush=True)
        while not Path(stop_file).exists():  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.05)
        await rt.idle()
        await rt.stop()
        print("host done", flush=True)


if __name__ == "__main__":
    asyncio.run(host(sys.argv[1], sys.argv[2]))
