"""Child process: Mailslot as installed without the ``otel`` extra (``opentelemetry`` cannot
be imported): ``python tracing_noextra_proc.py ADDRESS``. Sends, receives, asks and replies,
then prints what the receiver saw as JSON."""

from __future__ import annotations

import asyncio
import json
import sys

sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import opentelemetry -> ImportError

import mailslot  # noqa: E402
from mailslot import tracing  # noqa: E402


async def main(address: str) -> None:
    async with mailslot.connect(name="no-extra") as ms:
        inbox = await ms.open(address, ttl=30)
        asker = await ms.open(address + "-asker", ttl=30)
        await ms.send(address, "plain")
        msg = await inbox.receive(timeout=10)
        with tracing.handling(msg), tracing.span("nothing", parent=msg) as s:
            await msg.ack()

        async def answer() -> None:
            q = await inbox.receive(timeout=10)
            await q.reply("yes")
            await q.ack()

        task = asyncio.ensure_future(answer())
        reply = await asker.ask(address, "?", timeout=10)
        await task
        await asker.close()
        await inbox.close()
    print(
        json.dumps(
            {
                "headers": sorted(msg.headers),
                "reply": reply.text(),
                "span": s is None,
                "context": tracing.context_of(msg) is None,
                "otel_loaded": any(m.startswith("opentelemetry.") for m in sys.modules),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
