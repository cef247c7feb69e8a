"""Durable Flow feedback across processes, and the crew worker (replies, retries, giving up)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import mailslot
import pytest
from _kit import CREWAI_OFFLINE, CREWAI_WARNINGS, MODES, one_task_crew, script
from crewai.flow.persistence.sqlite import SQLiteFlowPersistence
from mailslot import sync
from mailslot_broker import NatsServer
from mailslot_crewai import STATUS_HEADER, CrewWorker, FlowResumer, SendMessageTool, UnknownFlow
from testsupport import client_env

pytestmark = CREWAI_WARNINGS

HERE = Path(__file__).resolve().parent


async def test_flow_paused_in_one_process_resumed_in_another(
    server: NatsServer, ms: mailslot.Mailslot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "flows.db")
    env = {**client_env(server), **CREWAI_OFFLINE, "HOME": str(tmp_path / "child-home")}
    (tmp_path / "child-home").mkdir()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "_flow_app.py"),
        "start",
        db,
        *MODES,
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    paused: dict[str, str] = json.loads(out.decode().strip().splitlines()[-1])
    assert set(paused) == set(MODES)

    # The reviewer (this process) finds both questions waiting and answers them.
    reviewer = await ms.open("reviewer", ttl=30)
    questions = {}
    for _ in MODES:
        q = await reviewer.receive(timeout=10)
        questions[q.correlation_id] = q
    assert set(questions) == set(paused.values())
    for mode, flow_id in paused.items():
        q = questions[flow_id]
        body = q.json()
        assert (q.reply_to, q.thread_id, q.priority.label) == ("flow-replies", flow_id, "urgent")
        assert body["method"] == "draft" and body["message"] == "Approve these release notes?"
        assert body["output"] == f"Release notes ({mode})"
        await q.reply({"feedback": f"ship it ({mode})"})
        await q.ack()

    # Another process (this one) resumes each flow from its reply; the crew after the
    # feedback runs in the flow's LLM mode.
    for k, v in client_env(server).items():
        if k.startswith("MAILSLOT_"):
            monkeypatch.setenv(k, v)
    import _flow_app

    announcements = await ms.open("announcements", ttl=30)
    replies = await ms.open("flow-replies", ttl=30)
    resumer = FlowResumer(_flow_app.ReleaseFlow, replies, SQLiteFlowPersistence(db))
    results = {}
    for _ in MODES:
        r = await resumer.resume_next(timeout=30)
        results[r.flow_id] = r
    for mode, flow_id in paused.items():
        r = results[flow_id]
        assert not r.paused
        assert r.result == {
            "draft": f"Release notes ({mode})",
            "feedback": f"ship it ({mode})",
            "crew": "announced",
        }
    notes = sorted([(await announcements.receive(timeout=10)).text() for _ in MODES])
    assert notes == sorted(f"Release notes ({m}): ship it ({m})" for m in MODES)

    # A second answer to a flow that already went on is terminated, never redelivered.
    await ms.send("flow-replies", "too late", correlation_id=paused["react"])
    with pytest.raises(UnknownFlow):
        await resumer.resume_next(timeout=10)
    with pytest.raises(mailslot.Timeout):
        await replies.receive(timeout=2)
    await asyncio.to_thread(_flow_app.client().close)  # the sync twin does not block a running loop
    _flow_app._client.clear()


def _crew_factory(mode: str, sms: sync.SyncMailslot, fail_first: int = 0):
    """A fresh crew per message; the first ``fail_first`` runs get an LLM that is down."""
    runs = []

    def build(msg: mailslot.Message):
        runs.append(msg.delivery_count)
        if len(runs) <= fail_first:
            llm = script(mode, [], "unused")
            llm.responses[:] = [RuntimeError("model down")]
        else:
            llm = script(
                mode,
                [("send_message", {"to": "notes", "message": "researched"})],
                lambda seen: "summary of NATS" if "sent message" in seen else "tool output missing",
            )
        return one_task_crew(
            llm, [SendMessageTool(mailbox=sms)], description="Summarise {topic} for {sender}"
        )

    build.runs = runs  # type: ignore[attr-defined]
    return build


@pytest.mark.parametrize("mode", MODES)
async def test_worker_serves_asks(mode: str, ms: mailslot.Mailslot, sms: sync.SyncMailslot) -> None:
    inbox = await ms.open("summariser", ttl=30)
    notes = await ms.open("notes", ttl=30)
    asker = await ms.open("asker", ttl=30)
    factory = _crew_factory(mode, sms)
    worker = CrewWorker(inbox, factory)
    serving = asyncio.ensure_future(worker.run(limit=1))
    reply = await asker.ask("summariser", {"topic": "NATS"}, timeout=60)
    outcomes = await asyncio.wait_for(serving, 30)
    assert reply.text() == "summary of NATS"
    assert reply.headers[STATUS_HEADER] == "ok"
    assert [(o.ok, o.attempt) for o in outcomes] == [(True, 1)]
    note = await notes.receive(timeout=10)
    assert note.text() == "researched"
    await note.ack()
    assert (await ms.inspect("summariser").stats()).total == 0
    assert factory.runs == [1]


@pytest.mark.parametrize("mode", MODES)
async def test_worker_retries_with_backoff_then_succeeds(
    mode: str, ms: mailslot.Mailslot, sms: sync.SyncMailslot
) -> None:
    inbox = await ms.open("summariser", ttl=30, max_deliver=3)
    asker = await ms.open("asker", ttl=30)
    factory = _crew_factory(mode, sms, fail_first=1)
    worker = CrewWorker(inbox, factory, retry_delays=[0.5])
    receipt = await asker.request("summariser", {"topic": "NATS"})
    outcomes = await asyncio.wait_for(worker.run(limit=2), 60)
    assert [(o.ok, o.attempt, o.retry_in) for o in outcomes] == [(False, 1, 0.5), (True, 2, None)]
    assert "model down" in (outcomes[0].error or "")
    reply = await asker.reply_for(receipt.correlation_id, timeout=10)
    assert reply.text() == "summary of NATS"
    assert factory.runs == [1, 2]


async def test_worker_gives_up_after_max_deliveries(ms: mailslot.Mailslot, sms: sync.SyncMailslot) -> None:
    inbox = await ms.open("summariser", ttl=30, max_deliver=3)
    asker = await ms.open("asker", ttl=30)
    factory = _crew_factory("native", sms, fail_first=99)
    worker = CrewWorker(inbox, factory, retry_delays=[0.2, 0.4])
    receipt = await asker.request("summariser", {"topic": "NATS"})
    outcomes = await asyncio.wait_for(worker.run(limit=3), 60)
    assert [(o.ok, o.attempt, o.retry_in, o.final) for o in outcomes] == [
        (False, 1, 0.2, False),
        (False, 2, 0.4, False),
        (False, 3, None, True),
    ]
    # The asker learns it failed instead of waiting forever.
    err = await asker.reply_for(receipt.correlation_id, timeout=10)
    assert err.headers[STATUS_HEADER] == "error"
    assert err.json() == {"error": "RuntimeError: model down", "attempts": 3}
    # Not acked (it stays for the dead-letter sidecar) and never delivered again.
    with pytest.raises(mailslot.Timeout):
        await inbox.receive(timeout=3)
    assert (await ms.inspect("summariser").stats()).total == 1
    assert factory.runs == [1, 2, 3]
