"""MailslotFlowPersistence: CrewAI flow state in the broker's state store.

A flow paused in one process resumes in another that shares nothing with it but the broker,
and no SQLite file is created by either (their HOME, cwd and temp dir are the test's); the
FlowPersistence contract (latest state, pending feedback, Pydantic states, serialization as
a Flow field) and the size limit; and the save/load latency beside SQLiteFlowPersistence.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import mailslot
import pytest
from _kit import CREWAI_OFFLINE, CREWAI_WARNINGS, MODES, sqlite_files
from crewai.flow.async_feedback import PendingFeedbackContext
from crewai.flow.persistence.sqlite import SQLiteFlowPersistence
from mailslot import sync
from mailslot_broker import NatsServer
from mailslot_crewai import MailslotFlowPersistence
from pydantic import BaseModel
from testsupport import client_env

pytestmark = CREWAI_WARNINGS

HERE = Path(__file__).resolve().parent
PROC = str(HERE / "_flow_store_proc.py")


async def test_flow_paused_in_one_process_resumes_in_another_with_no_sqlite_file(
    server: NatsServer, ms: mailslot.Mailslot, children: Any, tmp_path: Path, _crewai_offline: Path
) -> None:
    dirs = {name: tmp_path / name for name in ("start-home", "resume-home", "tmp", "work")}
    for d in dirs.values():
        d.mkdir()

    def env(home: str) -> dict[str, str]:
        return {**client_env(server), **CREWAI_OFFLINE, "HOME": str(dirs[home]), "TMPDIR": str(dirs["tmp"])}

    reviewer = await ms.open("reviewer", ttl=30)
    announcements = await ms.open("announcements", ttl=30)
    store = ms.state("crewai")

    # 1. Process A pauses one flow per LLM mode, naming no persistence.
    start = children.spawn([sys.executable, PROC, "start", *MODES], env("start-home"), cwd=dirs["work"])
    started = await children.finish(start, timeout=180)
    paused: dict[str, str] = started["paused"]
    assert set(paused) == set(MODES) and started["persistence"] == ["MailslotFlowPersistence"]
    assert sorted(await store.keys(("pending",))) == sorted(("pending", f) for f in paused.values())
    assert sorted(await store.keys(("flow",))) == sorted(("flow", f) for f in paused.values())

    # 2. The reviewer answers while nothing runs.
    for _ in MODES:
        q = await reviewer.receive(timeout=30)
        await q.reply({"feedback": f"ship it ({q.json()['output']})"})
        await q.ack()

    # 3. Process B, another HOME, resumes both from the broker alone.
    argv = [sys.executable, PROC, "resume", str(len(MODES))]
    resume = children.spawn(argv, env("resume-home"), cwd=dirs["work"])
    done = await children.finish(resume, timeout=180)
    results = {r["flow_id"]: r for r in done["resumed"]}
    assert set(results) == set(paused.values()) and done["pending"] == []
    for mode, flow_id in paused.items():
        draft = f"Release notes ({mode})"
        assert results[flow_id]["paused"] is False
        assert results[flow_id]["result"] == {"draft": draft, "feedback": f"ship it ({draft})"}
    notes = sorted([(await announcements.receive(timeout=10)).text() for _ in MODES])
    assert notes == sorted(f"Release notes ({m}): ship it (Release notes ({m}))" for m in MODES)

    # The pending records went with the resume; the latest state stays; no SQLite anywhere.
    assert await store.keys(("pending",)) == []
    assert len(await store.keys(("flow",))) == len(MODES)
    assert sqlite_files(*dirs.values(), _crewai_offline) == []
    await reviewer.close()
    await announcements.close()


class Draft(BaseModel):
    id: str = "flow-pydantic"
    title: str = ""
    revisions: int = 0


def _context(flow_id: str, output: Any = "draft v1") -> PendingFeedbackContext:
    return PendingFeedbackContext(
        flow_id=flow_id,
        flow_class="tests.ReleaseFlow",
        method_name="draft",
        method_output=output,
        message="Approve?",
        emit=["approved", "rejected"],
    )


def test_persistence_contract(sms: sync.SyncMailslot) -> None:
    p = MailslotFlowPersistence(sms, namespace="crewai-contract")
    assert p.load_state("nope") is None and p.load_pending_feedback("nope") is None
    p.save_state("f1", "first", {"id": "f1", "n": 1})
    p.save_state("f1", "second", {"id": "f1", "n": 2, "when": time.gmtime(0)[:3]})
    assert p.load_state("f1") == {"id": "f1", "n": 2, "when": [1970, 1, 1]}  # the latest, JSON-safe
    p.save_state("flow-pydantic", "draft", Draft(title="v1", revisions=3))
    assert p.load_state("flow-pydantic") == {"id": "flow-pydantic", "title": "v1", "revisions": 3}

    p.save_pending_feedback("f2", _context("f2"), {"id": "f2", "draft": "v1"})
    state, ctx = p.load_pending_feedback("f2") or ({}, None)
    assert state == {"id": "f2", "draft": "v1"} and isinstance(ctx, PendingFeedbackContext)
    assert (ctx.flow_id, ctx.method_name, ctx.method_output) == ("f2", "draft", "draft v1")
    assert ctx.emit == ["approved", "rejected"]
    assert p.load_state("f2") == {"id": "f2", "draft": "v1"}
    assert p.pending() == ["f2"]
    p.clear_pending_feedback("f2")
    assert p.load_pending_feedback("f2") is None and p.pending() == []
    p.clear_pending_feedback("f2")  # twice is fine
    p.delete("f1")
    assert p.load_state("f1") is None

    # A Flow serializes its persistence; CrewAI rebuilds it from the registry by type name.
    from crewai.flow.persistence.base import _persistence_registry

    dumped = p.model_dump(mode="json")
    assert dumped == {"persistence_type": "MailslotFlowPersistence", "namespace": "crewai-contract"}
    again = _persistence_registry[dumped["persistence_type"]].model_validate(dumped)
    assert isinstance(again, MailslotFlowPersistence) and again.namespace == "crewai-contract"


def test_state_above_the_max_value_size_writes_nothing(sms: sync.SyncMailslot) -> None:
    p = MailslotFlowPersistence(sms, namespace="crewai-size")
    limit = p.store.max_value_size
    p.save_pending_feedback("big", _context("big"), {"id": "big", "text": "small"})
    fits = {"id": "big", "text": "x" * (limit - 200)}
    p.save_state("big", "draft", fits)
    assert p.load_state("big") == fits
    with pytest.raises(mailslot.StateTooLarge):
        p.save_state("big", "draft", {"id": "big", "text": "x" * limit})
    with pytest.raises(mailslot.StateTooLarge):
        p.save_pending_feedback("big", _context("big", output="y" * limit), {"id": "big"})
    assert p.load_state("big") == fits  # neither write happened
    assert p.load_pending_feedback("big")[0] == {"id": "big", "text": "small"}  # type: ignore[index]


def _timed(fn: Any, n: int) -> tuple[float, float]:
    samples = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (n - 1))]


def test_latency_against_sqlite(sms: sync.SyncMailslot, tmp_path: Path) -> None:
    n = 200
    state = {"id": "lat", "draft": "x" * 2000, "items": list(range(50))}
    rows = []
    for name, p in (
        ("MailslotFlowPersistence", MailslotFlowPersistence(sms, namespace="crewai-latency")),
        ("SQLiteFlowPersistence", SQLiteFlowPersistence(str(tmp_path / "lat.db"))),
    ):
        p.save_state("lat", "warm", state)
        save = _timed(lambda i, p=p: p.save_state("lat", f"m{i}", state), n)
        load = _timed(lambda i, p=p: p.load_state("lat"), n)
        pend = _timed(lambda i, p=p: p.save_pending_feedback("lat", _context("lat"), state), n)
        assert p.load_state("lat") == state
        rows.append(
            f"{name:24} save {save[0]:.2f}/{save[1]:.2f}  load {load[0]:.2f}/{load[1]:.2f}  "
            f"pause {pend[0]:.2f}/{pend[1]:.2f}"
        )
    print(f"\nflow persistence, ms p50/p95 over {n}, ~2.3 KB state, local server:\n  " + "\n  ".join(rows))


def test_persist_decorator_saves_each_method_on_the_store(sms: sync.SyncMailslot) -> None:
    from crewai.flow.flow import Flow, listen, start
    from crewai.flow.persistence import persist

    store = MailslotFlowPersistence(sms, namespace="crewai-persist")

    @persist(store)
    class Steps(Flow[dict[str, Any]]):
        @start()
        def one(self) -> None:
            self.state.setdefault("steps", []).append("one")

        @listen(one)
        def two(self) -> None:
            self.state["steps"].append("two")

    flow = Steps()
    flow.kickoff()
    flow_id = flow.state["id"]
    assert store.load_state(flow_id)["steps"] == ["one", "two"]  # type: ignore[index]
    # A new flow given the id (another process would do the same) starts from that state.
    again = Steps()
    again.kickoff(inputs={"id": flow_id})
    assert again.state["id"] == flow_id and again.state["steps"] == ["one", "two", "one", "two"]
    assert store.load_state(flow_id)["steps"] == ["one", "two", "one", "two"]  # type: ignore[index]


def test_a_pause_whose_state_is_too_large_fails_in_kickoff(sms: sync.SyncMailslot) -> None:
    from crewai.flow import human_feedback
    from crewai.flow.flow import Flow, start
    from mailslot_crewai import MailboxFeedback

    feedback = MailboxFeedback(sms, to="reviewer", reply_to="big-replies")
    feedback_store = feedback.persistence
    assert isinstance(feedback_store, MailslotFlowPersistence)
    limit = feedback_store.store.max_value_size

    class BigFlow(Flow[dict[str, Any]]):
        @start()
        @human_feedback(message="Approve?", provider=feedback)
        def draft(self) -> str:
            self.state["blob"] = "x" * limit  # the question is small, the state is not
            return "short draft"

    with pytest.raises(mailslot.StateTooLarge):
        BigFlow().kickoff()
    assert feedback_store.pending() == []  # no half-paused flow left behind
