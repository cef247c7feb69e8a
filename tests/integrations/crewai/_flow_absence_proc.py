"""Child process for test_flow_absence.py:
``python _flow_absence_proc.py <start|resume> DB TTL KEEP [MODE...]``.

``start`` opens the flows' reply mailbox "flow-replies" (lease TTL s, retention KEEP s),
starts one ``_flow_app.ReleaseFlow`` per MODE, each pausing for mailbox feedback, prints the
paused flow ids as JSON, then waits in ``resume_from_mailbox`` for a reply, the way a
long-running service would; the test kills it there. ``resume`` is a fresh process: it opens
"flow-replies" again and resumes one flow with ``resume_from_mailbox`` (sync) and the other
with ``FlowResumer`` (async), then prints what each returned, whether any further reply came
and whether a flow is still pending. Connects with MAILSLOT_URL / MAILSLOT_CREDENTIALS.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import mailslot
from _flow_app import ReleaseFlow, client
from crewai.flow.persistence.sqlite import SQLiteFlowPersistence
from mailslot_crewai import FlowResumer, Resumed, resume_from_mailbox

REPLIES = "flow-replies"


def report(result: Any) -> None:
    """One result line for the test (``Children.result`` in tests/integrations/conftest.py);
    CrewAI prints its own panels on stdout around it."""
    print("RESULT " + json.dumps(result), flush=True)


def start(db: str, ttl: float, keep: float, modes: list[str]) -> None:
    box = client().open(REPLIES, ttl=ttl, keep=keep)
    paused = {}
    for mode in modes:
        r = ReleaseFlow(persistence=SQLiteFlowPersistence(db)).kickoff(inputs={"mode": mode})
        paused[mode] = r.context.flow_id
    report(paused)
    resume_from_mailbox(ReleaseFlow, box, SQLiteFlowPersistence(db), timeout=3600)  # killed meanwhile
    raise SystemExit("a reply came before the kill")


def _done(r: Resumed, how: str) -> dict[str, Any]:
    return {"flow_id": r.flow_id, "feedback": r.feedback, "paused": r.paused, "result": r.result, "how": how}


async def _resume_async(db: str, ttl: float, keep: float) -> tuple[dict[str, Any], bool]:
    async with mailslot.connect(name="release-flow-async") as ms:
        box = await ms.open(REPLIES, ttl=ttl, keep=keep)
        resumer = FlowResumer(ReleaseFlow, box, SQLiteFlowPersistence(db))
        done = _done(await resumer.resume_next(timeout=60), "FlowResumer")
        try:
            await box.receive(timeout=1.5)
            extra = True
        except mailslot.Timeout:
            extra = False
        await box.close()
    return done, extra


def resume(db: str, ttl: float, keep: float) -> None:
    box = client().open(REPLIES, ttl=ttl, keep=keep)
    first = _done(resume_from_mailbox(ReleaseFlow, box, SQLiteFlowPersistence(db), timeout=60), "sync")
    box.close()  # anything it prefetched goes back for the async resumer
    second, extra = asyncio.run(_resume_async(db, ttl, keep))
    pending = []
    for d in (first, second):
        try:
            ReleaseFlow.from_pending(d["flow_id"], SQLiteFlowPersistence(db))
            pending.append(d["flow_id"])
        except ValueError:
            pass
    client().close()
    report({"resumed": [first, second], "extra": extra, "pending": pending})


if __name__ == "__main__":
    _, cmd, db, ttl, keep, *modes = sys.argv
    if cmd == "start":
        start(db, float(ttl), float(keep), modes)
    else:
        assert cmd == "resume", cmd
        resume(db, float(ttl), float(keep))
