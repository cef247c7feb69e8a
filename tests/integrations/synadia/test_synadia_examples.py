"""The Synadia example runs end to end (it starts its own nats-server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from testsupport import ROOT, run_example

EXAMPLES = sorted((ROOT / "examples").glob("synadia_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path: Path, tmp_path: Path) -> None:
    proc = run_example(path, tmp_path, drop=("MAILSLOT_URL", "MAILSLOT_CREDENTIALS"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "caller: answer 'Looked at it. LGTM.'" in proc.stdout
    assert "planner: reply 'w1 says: hello from a mailbox'" in proc.stdout
    assert "example: OK" in proc.stdout
    assert "ResourceWarning" not in proc.stderr, proc.stderr[-3000:]


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"synadia_bridge"}
