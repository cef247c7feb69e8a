"""The AutoGen examples and notebook run end to end (each starts its own nats-server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("autogen_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAILSLOT_URL", "MAILSLOT_CREDENTIALS")}
    proc = subprocess.run(
        [sys.executable, str(path)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "example: OK" in proc.stdout


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"autogen_agents", "autogen_runtime"}


def test_notebook_runs(tmp_path: Path) -> None:
    nb = nbformat.read(ROOT / "notebooks" / "04_autogen.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "answered before a host exists? False" in outputs
    assert "Answer(text='42 (re: life?)')" in outputs
    assert "expert_proxy: use a B-tree" in outputs
