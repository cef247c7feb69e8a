"""Unchanged AutoGen ``RoutedAgent``s on ``MailslotAgentRuntime``: durable tasks across processes.

The client process sends a task to ``AgentId("translator", "fr")`` *before* any process hosts
that agent type: the task waits in the type's mailbox. Then a host process starts, registers
the agent exactly as it would on ``SingleThreadedAgentRuntime``, handles the task, and the
typed answer lands in the client's mailbox. A published event reaches it too.

Uses ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``) when set, else starts its own nats-server
in a temp dir (and stops it at the end; ``_broker.py`` beside this file).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass

import mailslot
from _broker import broker
from autogen_core import (
    AgentId,
    MessageContext,
    RoutedAgent,
    TopicId,
    TypeSubscription,
    event,
    rpc,
    try_get_known_serializers_for_type,
)
from mailslot_autogen import MailslotAgentRuntime, type_address

NS = "example"


@dataclass
class Translate:
    text: str


@dataclass
class Translated:
    text: str
    by: str


@dataclass
class Shutdown:
    reason: str


class Translator(RoutedAgent):
    """Plain AutoGen: nothing here knows about Mailslot."""

    def __init__(self) -> None:
        super().__init__("translates to French (very badly)")
        self.done = asyncio.Event()

    @rpc
    async def on_translate(self, message: Translate, ctx: MessageContext) -> Translated:
        return Translated(text=f"le {message.text}", by=str(self.id))

    @event
    async def on_shutdown(self, message: Shutdown, ctx: MessageContext) -> None:
        print(f"[host] {self.id} told to stop: {message.reason}", flush=True)
        self.done.set()


async def host() -> None:
    async with mailslot.connect(name="translator-host") as ms:
        rt = MailslotAgentRuntime(ms, namespace=NS)
        try:  # stopped on every path: its receive loops and mailboxes end before the client
            await Translator.register(rt, "translator", Translator)
            await rt.add_subscription(TypeSubscription("control", "translator"))
            print("[host] serving agent type 'translator'", flush=True)
            agent = await rt.try_get_underlying_agent_instance(AgentId("translator", "fr"), Translator)
            await asyncio.wait_for(agent.done.wait(), 120)
            await rt.idle()
        finally:
            await rt.stop()


async def client(env: dict[str, str]) -> None:
    async with mailslot.connect(name="translator-client") as ms:
        rt = MailslotAgentRuntime(ms, namespace=NS, rpc_timeout=120)
        rt.add_message_serializer(try_get_known_serializers_for_type(Translated))
        # declaring the subscription here makes published events durable mail too
        await rt.add_subscription(TypeSubscription("control", "translator"))
        pending = asyncio.create_task(rt.send_message(Translate("cat"), AgentId("translator", "fr")))
        view = ms.inspect(type_address(NS, "translator"))
        while (await view.stats()).total == 0:  # noqa: ASYNC110 (polling the broker, not a local flag)
            await asyncio.sleep(0.05)
        print("[client] task stored; no host is running yet", flush=True)
        proc = subprocess.Popen([sys.executable, __file__, "host"], env=env)  # noqa: ASYNC220
        try:
            answer = await asyncio.wait_for(pending, 120)
            print(f"[client] answer: {answer}", flush=True)
            assert answer == Translated(text="le cat", by="translator/fr")
            await rt.publish_message(Shutdown("all done"), TopicId("control", "fr"))
            code = await asyncio.to_thread(proc.wait, 120)
            assert code == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            await rt.stop()
    print("autogen runtime example: OK")


def main() -> None:
    with broker():  # the host process inherits MAILSLOT_URL / MAILSLOT_CREDENTIALS
        asyncio.run(client(dict(os.environ)))


if __name__ == "__main__":
    if sys.argv[1:] == ["host"]:
        asyncio.run(host())
    else:
        main()
