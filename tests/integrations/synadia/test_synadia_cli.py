"""``mailslot synadia bridge``: the SDK's CLI runs the bridge of mailslot-synadia (and imports
neither it nor the Synadia SDKs unless that command runs)."""

from __future__ import annotations

import asyncio
import subprocess

from conftest import ClientFactory, NatsFactory
from integrations.conftest import Children
from mailslot_broker import NatsServer
from synadia_ai.agents import Agents, ResponseChunk
from synadia_support import discover
from testsupport import PYTHON, client_env


def test_cli_does_not_import_the_member() -> None:
    code = (
        "import sys, mailslot.cli\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('synadia_ai', 'mailslot_synadia')))"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


async def test_mailslot_synadia_bridge(
    server: NatsServer, children: Children, client: ClientFactory, nats_conn: NatsFactory
) -> None:
    argv = [PYTHON, "-m", "mailslot", "synadia", "bridge", "--owner", "team", "--heartbeat", "1"]
    children.spawn(argv, client_env(server))
    coder = await client("coder")
    mb = await coder.open("coder")
    agents = Agents(nc=await nats_conn())
    agent = await discover(agents, "coder", timeout=60)

    async def answer() -> None:
        msg = await mb.receive(timeout=30)
        await msg.reply(f"got {msg.json()['prompt']}")
        await msg.ack()

    task = asyncio.create_task(answer())
    texts = [m.text async for m in agent.prompt("via cli", timeout=20) if isinstance(m, ResponseChunk)]
    await task
    assert texts == ["got via cli"]
    await mb.close()
    await agents.close()


def test_mailslot_synadia_needs_a_command() -> None:
    r = subprocess.run([PYTHON, "-m", "mailslot", "synadia"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "bridge" in r.stderr
