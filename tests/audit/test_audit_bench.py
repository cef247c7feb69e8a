"""The bench's audit rows still run and report their ratios (not a performance test)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from testsupport import PYTHON, ROOT


def test_bench_audit_rows(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    argv = [PYTHON, "-m", "bench", "--smoke", "--only", "audit", "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "MAILSLOT_URL"}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    for key in ("send_on_vs_off_ratio", "send_bodies_vs_off_ratio", "receive_on_vs_off_ratio"):
        assert isinstance(data["ratios"][f"audit.{key}"], (int, float)), key
    assert data["audit"]["records_last_round"] > 0  # the "on" rounds did record
    assert "audit on (vs audit off)" in proc.stdout
