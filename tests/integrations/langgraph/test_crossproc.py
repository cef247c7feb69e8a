"""A graph paused in one process and resumed in another, after the reply landed, through the
JetStream checkpointer (the processes share nothing but the broker) and through a sqlite
file; and a process that dies right after sending (no duplicate request)."""

from __future__ import annotations

from pathlib import Path

import mailslot
import pytest
from lg_helpers import ask_graph, assert_empty, checkpointer_for, child_env, run_child
from mailslot_langgraph import MailContext, resume_when_replied


@pytest.fixture(params=["jetstream", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The checkpointer the processes share: a state-store namespace, or a sqlite file."""
    return "mailslot:crossproc" if request.param == "jetstream" else str(tmp_path / "graph.db")


async def _answer_one(coder: mailslot.Mailbox) -> mailslot.Message:
    req = await coder.receive(timeout=30)
    await req.reply({"n": req.json()["q"] * 2})
    await req.ack()
    return req


async def test_pause_in_one_process_resume_in_another(
    server: object, coder: mailslot.Mailbox, store: str
) -> None:
    env = child_env(server)
    db = store
    start = run_child(["start", db, "th-x"], env)
    assert len(start["interrupts"]) == 1
    wait = start["interrupts"][0]
    assert wait["mailslot"] == "await_reply" and wait["thread_id"] == "th-x"
    # The first process has exited; the remote agent answers now.
    req = await _answer_one(coder)
    assert req.id == wait["correlation_id"] and req.thread_id == "th-x"
    done = run_child(["resume", db, "th-x"], env)
    assert done["waits"] == 1
    assert done["error"] == "None"
    assert done["value"]["answer"] == {"n": 42}
    await assert_empty(coder)  # the resumed node did not send the request again


async def test_crash_right_after_send_sends_once(
    server: object, ms: mailslot.Mailslot, planner: mailslot.Mailbox, coder: mailslot.Mailbox, store: str
) -> None:
    env = child_env(server)
    db = store
    run_child(["start", db, "th-crash", "--crash"], env, expect_rc=17)
    again = run_child(["restart", db, "th-crash"], env)  # LangGraph re-runs the node
    assert len(again["interrupts"]) == 1
    req = await _answer_one(coder)
    assert req.id == again["interrupts"][0]["correlation_id"]
    await assert_empty(coder)  # the re-sent request was dropped as a duplicate
    # Resume here (a third process, the test's own), from the same store.
    async with checkpointer_for(ms, db) as saver:
        done = await resume_when_replied(
            ask_graph(saver), planner, "th-crash", context=MailContext(mailbox=planner), timeout=30
        )
    assert done.error is None and done.output.value["answer"] == {"n": 42}
