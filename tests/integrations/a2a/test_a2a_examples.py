"""The A2A example and notebook run end to end (each starts its own nats-server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from testsupport import ROOT, run_example, run_notebook

EXAMPLES = sorted((ROOT / "examples").glob("a2a_*.py"))
_DROP = ("MAILSLOT_URL", "MAILSLOT_CREDENTIALS")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path, tmp_path: Path) -> None:
    proc = run_example(path, tmp_path, drop=_DROP)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "sent while the agent is offline: TASK_STATE_SUBMITTED" in proc.stdout
    assert "later: TASK_STATE_COMPLETED -> HELLO, OFFLINE AGENT" in proc.stdout
    assert "example: OK" in proc.stdout


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"a2a_offline_round_trip"}


#: Lines the notebook prints, in its order: each step of the offline round trip, the HTTP front.
NOTEBOOK_SAYS = [
    "sent: TASK_STATE_SUBMITTED",
    "get_task: TASK_STATE_SUBMITTED",
    "cancel queued: TASK_STATE_CANCELED",
    "agent online",
    "events it missed: ['task', 'status_update', 'artifact_update', 'status_update']",
    "result: TASK_STATE_COMPLETED -> HELLO, OFFLINE AGENT",
    "the cancelled one: TASK_STATE_CANCELED",
    "card bindings: ['JSONRPC', 'MAILSLOT']",
    "http send: TASK_STATE_SUBMITTED",
    "http result: TASK_STATE_COMPLETED -> HELLO OVER HTTP",
    "unknown agent: -32602",
    "done",
]


def test_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _DROP:
        monkeypatch.delenv(var, raising=False)
    lines = run_notebook(ROOT / "notebooks" / "06_a2a.ipynb", tmp_path, timeout=120).splitlines()
    found = [line for line in lines if any(line.startswith(said) for said in NOTEBOOK_SAYS)]
    assert found == NOTEBOOK_SAYS, "\n".join(lines)
