"""Child process for the cross-process tracing test: ``python tracing_proc.py ADDRESS SPANS``.

Traces with its own SDK provider into the file SPANS (JSON lines), receives one message, does
its work in a span under the delivery, replies and acks.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import mailslot
from mailslot import tracing
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from tracing_support import FileExporter


async def main(address: str, spans: Path) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(spans)))
    tracing.set_tracer_provider(provider)
    try:
        async with mailslot.connect(name="worker-proc") as ms:
            mb = await ms.open(address, ttl=30)
            print("ready", flush=True)
            msg = await mb.receive(timeout=30)
            with tracing.handling(msg), provider.get_tracer("worker").start_as_current_span("work"):
                await msg.reply({"done": msg.json()})
            await msg.ack()
            await mb.close()
    finally:
        provider.shutdown()
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
