"""Child process for test_flow_persistence.py: ``python _flow_store_proc.py start MODE...`` or
``python _flow_store_proc.py resume COUNT``.

Neither side names a persistence: ``start`` kicks off one ``_flow_app.ReleaseFlow`` per MODE
with none, so ``MailboxFeedback`` saves each paused flow with its default, the broker's state
store; it reports the paused flow ids and the persistence class used. The flows announce by
plain mail (``plain``), not with a crew: a ``Crew`` writes CrewAI's own task-output replay
database (``latest_kickoff_task_outputs.db``), which is not flow state, and the test checks
that no SQLite file appears at all. ``resume`` is another process
sharing nothing with the first but the broker: ``FlowResumer`` with its default persistence
resumes COUNT flows from their replies and reports what each returned and what is still
pending. Connects with MAILSLOT_URL / MAILSLOT_CREDENTIALS.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import mailslot
from _flow_app import ReleaseFlow, client
from mailslot_crewai import FlowResumer

REPLIES = "flow-replies"


def report(result: Any) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def start(modes: list[str]) -> None:
    paused, backends = {}, set()
    for mode in modes:
        flow = ReleaseFlow()
        r = flow.kickoff(inputs={"mode": mode, "plain": True})
        paused[mode] = r.context.flow_id
        backends.add(type(flow.persistence).__name__)
    client().close()
    report({"paused": paused, "persistence": sorted(backends)})


async def resume(count: int) -> None:
    async with mailslot.connect(name="flow-resumer") as ms:
        box = await ms.open(REPLIES, ttl=30)
        resumer = FlowResumer(ReleaseFlow, box)
        try:
            done = []
            for _ in range(count):
                r = await resumer.resume_next(timeout=60)
                done.append({"flow_id": r.flow_id, "paused": r.paused, "result": r.result})
            pending = resumer.persistence.pending()  # type: ignore[attr-defined]
        finally:
            resumer.close()
            await box.close()
    await asyncio.to_thread(client().close)
    report({"resumed": done, "pending": pending})


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "start":
        start(args)
    else:
        assert cmd == "resume", cmd
        asyncio.run(resume(int(args[0])))
