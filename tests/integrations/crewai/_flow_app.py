"""A Flow that asks a reviewer by mail, pauses, and after the answer has a crew announce it.

Imported by the tests (to resume) and run as a child process (to start and pause):
``python _flow_app.py start DB MODE...`` prints the paused flow ids as JSON. The Mailslot
client comes from MAILSLOT_URL / MAILSLOT_CREDENTIALS, connected on first use.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from _kit import kickoff, one_task_crew, script
from crewai.flow import human_feedback
from crewai.flow.flow import Flow, listen, start
from crewai.flow.persistence.sqlite import SQLiteFlowPersistence
from mailslot import sync
from mailslot_crewai import MailboxFeedback, SendMessageTool

_client: list[sync.SyncMailslot] = []


def client() -> sync.SyncMailslot:
    if not _client:
        _client.append(sync.connect(name="release-flow"))
    return _client[0]


class ReleaseFlow(Flow):
    @start()
    @human_feedback(
        message="Approve these release notes?",
        provider=MailboxFeedback(client, to="reviewer", reply_to="flow-replies", priority="urgent"),
    )
    def draft(self) -> str:
        self.state["draft"] = f"Release notes ({self.state['mode']})"
        return self.state["draft"]

    @listen(draft)
    async def announce(self, result: Any) -> dict[str, Any]:
        note = f"{self.state['draft']}: {result.feedback}"
        box = await asyncio.to_thread(client)  # the sync twin does not block a running loop
        if self.state.get("plain"):  # no crew (a Crew writes CrewAI's task-output database)
            await asyncio.to_thread(box.send, "announcements", note)
            return {"draft": self.state["draft"], "feedback": result.feedback}
        llm = script(
            self.state["mode"], [("send_message", {"to": "announcements", "message": note})], "announced"
        )
        out = await kickoff(one_task_crew(llm, [SendMessageTool(mailbox=box)]))
        return {"draft": self.state["draft"], "feedback": result.feedback, "crew": out.raw}


if __name__ == "__main__":
    _, cmd, db, *modes = sys.argv
    assert cmd == "start"
    paused = {}
    for mode in modes:
        r = ReleaseFlow(persistence=SQLiteFlowPersistence(db)).kickoff(inputs={"mode": mode})
        paused[mode] = r.context.flow_id
    client().close()
    print(json.dumps(paused), flush=True)
