"""One reply mailbox serves the flows of one store: flows kept in another store are refused
their pause, and a resumer of another store refuses to start, so neither takes (and
terminates) the other's replies. Real server, two MailslotFlowPersistence namespaces."""

from __future__ import annotations

import asyncio
from typing import Any

import mailslot
import pytest
from _kit import CREWAI_WARNINGS
from crewai.flow import human_feedback
from crewai.flow.flow import Flow, listen, start
from mailslot import sync
from mailslot_crewai import (
    FlowResumer,
    MailboxFeedback,
    MailslotFlowPersistence,
    ReplyToInUse,
    resume_from_mailbox,
    unbind_reply_to,
)

pytestmark = CREWAI_WARNINGS

_client: list[sync.SyncMailslot] = []
feedback = MailboxFeedback(lambda: _client[0], to="reviewer", reply_to="shared-replies")


class AppFlow(Flow):
    @start()
    @human_feedback(message="Approve?", provider=feedback)
    def draft(self) -> str:
        return "draft"

    @listen(draft)
    def done(self, result: Any) -> str:
        return f"done: {result.feedback}"


async def test_a_reply_mailbox_serves_one_store(sms: sync.SyncMailslot, ms: mailslot.Mailslot) -> None:
    _client[:] = [sms]
    store_a = MailslotFlowPersistence(sms, namespace="app-a")
    store_b = MailslotFlowPersistence(sms, namespace="app-b")
    reviewer = await ms.open("reviewer", ttl=30)

    paused = await AppFlow(persistence=store_a).kickoff_async()  # binds shared-replies to app-a
    flow_id = paused.context.flow_id
    with pytest.raises(ReplyToInUse, match="mailslot:app-a"):
        await AppFlow(persistence=store_b).kickoff_async()
    question = await reviewer.receive(timeout=10)
    assert question.json()["flow_id"] == flow_id
    await question.reply({"feedback": "ship it"})
    await question.ack()
    assert (await reviewer.stats()).total == 0  # the refused flow mailed nothing

    box = await ms.open("shared-replies", ttl=30)
    wrong = FlowResumer(AppFlow, box, store_b)
    with pytest.raises(ReplyToInUse):
        await wrong.resume_next(timeout=5)
    sync_box = await asyncio.to_thread(sms.open, "shared-replies", ttl=30)
    with pytest.raises(ReplyToInUse):
        await asyncio.to_thread(resume_from_mailbox, AppFlow, sync_box, store_b, timeout=5)
    assert (await ms.inspect("shared-replies").stats()).total == 1  # the reply was not taken

    right = FlowResumer(AppFlow, box, store_a)
    resumed = await right.resume_next(timeout=10)
    assert (resumed.flow_id, resumed.result) == (flow_id, "done: ship it")

    await asyncio.to_thread(unbind_reply_to, sms, "shared-replies")  # app-a is done with it
    await FlowResumer(AppFlow, box, store_b).bind()
    await asyncio.to_thread(sync_box.close)
    await box.close()
