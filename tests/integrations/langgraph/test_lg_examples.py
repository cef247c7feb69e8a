"""The LangGraph examples and notebook run end to end (each starts its own nats-server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("langgraph_*.py"))
_DROP = ("MAILSLOT_URL", "MAILSLOT_CREDENTIALS", "LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    proc = subprocess.run(
        [sys.executable, str(path)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
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
    nb = nbformat.read(ROOT / "notebooks" / "03_langgraph.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "took: login is down | critical from oncall" in outputs
    assert "waits found: 1" in outputs
    assert "resumed: {'task': 'add SSO', 'days': 3}" in outputs
    assert "the request was sent exactly once" in outputs
    assert "ask_agent: reviewer replied: approved" in outputs
    assert "broadcast seen: release.sso -> SSO ships today" in outputs
