"""examples/crewai_*.py and notebooks/05_crewai.ipynb run offline (scripted LLM, no telemetry)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from _kit import CREWAI_OFFLINE, sqlite_files
from mailslot_broker import NatsServer
from testsupport import PYTHON, ROOT, client_env, run_notebook


def _env(tmp_path: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {**(base or dict(os.environ)), **CREWAI_OFFLINE, "HOME": str(home)}


@pytest.mark.parametrize("mode", ["react", "native"])
def test_agents_example(mode: str, tmp_path: Path) -> None:
    """Starts its own nats-server (no MAILSLOT_URL in the environment)."""
    args = [PYTHON, str(ROOT / "examples" / "crewai_agents.py")] + (["--native"] if mode == "native" else [])
    r = subprocess.run(args, env=_env(tmp_path), capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert ("native function calling" if mode == "native" else "ReAct text") in out
    assert "researcher worker: [(True, 'JetStream keeps every message" in out
    assert "editor got [urgent] from planner: Draft the post today" in out
    assert "team.news: Release planned for Friday" in out
    assert "crew_started -> task_started -> tool_used -> tool_used -> tool_used -> task_completed" in out
    assert "lead got: task_completed" in out and "lead got: crew_completed" in out


def test_flow_feedback_example(server: NatsServer, tmp_path: Path) -> None:
    """Uses MAILSLOT_URL; the flow pauses in the script's process and resumes in its child,
    its state in the broker's state store: no SQLite file is written."""
    r = subprocess.run(
        [PYTHON, str(ROOT / "examples" / "crewai_flow_feedback.py")],
        env=_env(tmp_path, client_env(server)),
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith(("[pid", "reviewer", "result"))]
    paused, reviewed, resumed, result = lines
    assert "paused: HumanFeedbackPending" in paused
    stored = f"paused flows in the state store (MailslotFlowPersistence): ['{paused.split()[3]}']"
    assert stored in r.stdout.splitlines()
    assert sqlite_files(tmp_path) == []
    assert (
        reviewed
        == "reviewer got [urgent]: Approve these release notes? 'Mailslot 1.0: durable mail for agents'"
    )
    assert "resumed with 'approved, ship it'" in resumed
    assert paused.split()[1] != resumed.split()[1]  # two different processes
    assert paused.split()[3] == resumed.split()[3]  # the same flow
    assert (
        result == "result: published 'Mailslot 1.0: durable mail for agents' after review: approved, ship it"
    )


def test_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in _env(tmp_path).items():
        monkeypatch.setenv(k, v)  # the kernel inherits them
    text = run_notebook(ROOT / "notebooks" / "05_crewai.ipynb", tmp_path, timeout=180)
    assert "editor got [urgent] from planner: Draft the post" in text
    assert (
        "crew_started -> task_started -> tool_used -> tool_used -> task_completed -> crew_completed" in text
    )
    assert "researcher served: [(True, 'JetStream keeps every message" in text
    assert "paused: HumanFeedbackPending | pending in the state store: True" in text
    assert "published after review: approved" in text
    # The flow's state went to the broker, not to CrewAI's flow_states.db (the crews above write
    # CrewAI's own task-output replay database, latest_kickoff_task_outputs.db: not flow state).
    assert [Path(f).name for f in sqlite_files(tmp_path)] == ["latest_kickoff_task_outputs.db"]
