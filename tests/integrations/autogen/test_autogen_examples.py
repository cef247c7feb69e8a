"""The AutoGen examples and notebook run end to end (each starts its own nats-server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from testsupport import ROOT, run_example, run_notebook

EXAMPLES = sorted((ROOT / "examples").glob("autogen_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path, tmp_path: Path) -> None:
    proc = run_example(path, tmp_path, drop=("MAILSLOT_URL", "MAILSLOT_CREDENTIALS"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "example: OK" in proc.stdout


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"autogen_agents", "autogen_runtime"}


def test_notebook_runs(tmp_path: Path) -> None:
    outputs = run_notebook(ROOT / "notebooks" / "04_autogen.ipynb", tmp_path, timeout=120)
    assert "answered before a host exists? False" in outputs
    assert "Answer(text='42 (re: life?)')" in outputs
    assert "expert_proxy: use a B-tree" in outputs
    # agent state in the state store: the counter goes on on a new host
    assert "first host counts [1, 2]" in outputs and "host after a restart counts [3, 4]" in outputs
