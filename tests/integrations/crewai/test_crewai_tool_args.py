"""Tool arguments: ``message`` as text (text/plain) or a JSON object (application/json), in a
crew in both agent modes."""

from __future__ import annotations

import asyncio

import mailslot
import pytest
from _kit import CREWAI_WARNINGS, MODES, kickoff, one_task_crew, script
from mailslot import sync
from mailslot_crewai import mailbox_tools

pytestmark = CREWAI_WARNINGS


@pytest.mark.parametrize("mode", MODES)
async def test_structured_message_is_sent_as_json(
    mode: str, sms: sync.SyncMailslot, ms: mailslot.Mailslot
) -> None:
    me = await asyncio.to_thread(sms.open, "planner", ttl=30)
    reviewer = await ms.open("reviewer", ttl=30)
    llm = script(
        mode,
        [
            ("send_message", {"to": "reviewer", "message": {"pr": 7, "files": ["a.py"]}}),
            ("send_message", {"to": "reviewer", "message": "look at PR 7"}),
        ],
        lambda seen: "sent",
    )
    await kickoff(one_task_crew(llm, mailbox_tools(sms, me)))
    first, second = await reviewer.receive(timeout=10), await reviewer.receive(timeout=10)
    assert (first.content_type, first.json()) == ("application/json", {"pr": 7, "files": ["a.py"]})
    assert second.content_type.startswith("text/plain") and second.text() == "look at PR 7"
    await first.ack()
    await second.ack()
