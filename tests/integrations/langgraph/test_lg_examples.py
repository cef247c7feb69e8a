"""The LangGraph examples and notebook run end to end (each starts its own nats-server)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from testsupport import PYTHON, ROOT, run_example, run_notebook

EXAMPLES = sorted((ROOT / "examples").glob("langgraph_*.py"))
_DROP = ("MAILSLOT_URL", "MAILSLOT_CREDENTIALS", "LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path, tmp_path: Path) -> None:
    proc = run_example(path, tmp_path, drop=_DROP)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "example: OK" in proc.stdout


def test_durable_ask_example_keeps_sqlite_available(tmp_path: Path) -> None:
    """The JetStream checkpointer is the default; ``--sqlite`` runs the same flow on a file."""
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    path = ROOT / "examples" / "langgraph_durable_ask.py"
    proc = subprocess.run(
        [PYTHON, str(path), "--sqlite"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "example: OK" in proc.stdout


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {
        "langgraph_durable_ask",
        "langgraph_inbox_nodes",
        "langgraph_tools_agent",
    }


def test_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _DROP:
        monkeypatch.delenv(var, raising=False)
    outputs = run_notebook(ROOT / "notebooks" / "03_langgraph.ipynb", tmp_path, timeout=120)
    assert "took: login is down | critical from oncall" in outputs
    assert "waits found: 1" in outputs
    assert "resumed: {'task': 'add SSO', 'days': 3}" in outputs
    assert "the request was sent exactly once" in outputs
    assert "ask_agent: reviewer replied: approved" in outputs
    assert "broadcast seen: release.sso -> SSO ships today" in outputs
