"""Child-process entry points for multi-process tests: ``python -m procs <command> ...``.

They connect with MAILSLOT_URL / MAILSLOT_CREDENTIALS from the environment (see
``testsupport.client_env``), or to the local broker when those are unset.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import mailslot


async def send(to: str, n: int, prefix: str) -> None:
    async with mailslot.connect(name="sender-proc") as ms:
        for i in range(n):
            await ms.send(to, f"{prefix}{i}")
    print("sent", n, flush=True)


async def receive(address: str, n: int) -> None:
    async with mailslot.connect() as ms:
        mb = await ms.open(address, ttl=30)
        got = []
        for _ in range(n):
            m = await mb.receive(timeout=20)
            got.append(m.text())
            await m.ack()
        await mb.close()
    print(json.dumps(got), flush=True)


async def hold(address: str) -> None:
    """Receive one message, announce it, and never ack: the test kills us."""
    async with mailslot.connect() as ms:
        mb = await ms.open(address, ttl=30, ack_wait=2)
        m = await mb.receive(timeout=20)
        print(json.dumps({"held": m.text()}), flush=True)
        await asyncio.sleep(3600)


async def online(address: str, ttl: float) -> None:
    """Open a mailbox, say so, and stay online until the test kills us (no close)."""
    async with mailslot.connect() as ms:
        await ms.open(address, ttl=ttl)
        print(json.dumps({"online": address}), flush=True)
        await asyncio.sleep(3600)


async def exhaust(address: str) -> None:
    """Take one message through both of its deliveries (nak, then hold), then wait to be
    killed: the message has used its last delivery and nobody will ever pull again."""
    async with mailslot.connect() as ms:
        mb = await ms.open(address, ttl=60, ack_wait=2, max_deliver=2)
        m = await mb.receive(timeout=20)
        await m.nak()
        m = await mb.receive(timeout=20)
        print(json.dumps({"held": m.text(), "deliveries": m.delivery_count}), flush=True)
        await asyncio.sleep(3600)


async def local_info() -> None:
    async with mailslot.connect() as ms:
        from mailslot_broker import read_state

        state = read_state()
        print(json.dumps({"url": ms.url, "pid": state.pid if state else None}), flush=True)


async def provision_once() -> None:
    async with mailslot.connect() as ms:
        print(json.dumps({"ok": True, "created": ms.provisioned.created}), flush=True)


COMMANDS = {
    "send": lambda a: send(a[0], int(a[1]), a[2] if len(a) > 2 else "m"),
    "receive": lambda a: receive(a[0], int(a[1])),
    "hold": lambda a: hold(a[0]),
    "online": lambda a: online(a[0], float(a[1])),
    "exhaust": lambda a: exhaust(a[0]),
    "local-info": lambda a: local_info(),
    "provision": lambda a: provision_once(),
}

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(COMMANDS[sys.argv[1]](sys.argv[2:]))
