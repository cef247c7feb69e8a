"""Child process for the cross-process trace: an AutoGen AgentWorker serving one task.

``python tracing_autogen_proc.py SPANS`` traces with its own SDK provider into the file SPANS
(JSON lines), serves ``solver`` (an AssistantAgent on a scripted offline model) for one task,
and exits.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import mailslot
from autogen_agentchat.agents import AssistantAgent
from mailslot import tracing
from mailslot_autogen import AgentWorker
from mailslot_autogen.testing import replay
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from tracing_support import FileExporter


async def main(spans: Path) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(spans)))
    tracing.set_tracer_provider(provider)
    try:
        async with mailslot.connect(name="autogen-host") as ms:
            box = await ms.open("solver", ttl=30)
            worker = AgentWorker(box, AssistantAgent("solver", model_client=replay("the answer is 42")))
            print("ready", flush=True)
            await worker.serve(max_tasks=1)
            await box.close()
    finally:
        provider.shutdown()
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
