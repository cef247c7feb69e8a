"""An A2A agent in a process of its own: ``python a2a_agent_proc.py ADDRESS STEPS DELAY ACK_WAIT``.

Serves :class:`a2a_support.EchoExecutor` from the mailbox at ADDRESS (broker from
``MAILSLOT_URL``/``MAILSLOT_CREDENTIALS``) and prints ``RESULT {"started": task_id}`` when a
task's work begins, so a test can kill it mid-task.
"""

from __future__ import annotations

import asyncio
import json
import sys

import mailslot
from a2a.server.agent_execution import RequestContext
from a2a.server.events import EventQueue
from a2a_support import EchoExecutor, agent_card
from mailslot_a2a import A2ARunner


class ReportingExecutor(EchoExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        print("RESULT " + json.dumps({"started": context.task_id}), flush=True)
        await super().execute(context, event_queue)


async def main(address: str, steps: int, delay: float, ack_wait: float) -> None:
    async with mailslot.connect(name=address) as ms:
        executor = ReportingExecutor(steps=steps, delay=delay)
        async with A2ARunner(ms, executor, agent_card(address), address=address, ack_wait=ack_wait) as runner:
            print("RESULT " + json.dumps({"ready": address}), flush=True)
            await runner.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
