"""``python -m bench --smoke`` still runs end to end and writes the ratios (not a performance test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke_writes_every_ratio(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    env = dict(os.environ)
    env.pop("MAILSLOT_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    for section in ("send", "receive", "latency", "priority", "lifecycle", "idle"):
        assert section in data, section
    ratios = data["ratios"]
    for key in (
        "send.send_vs_publish_ratio",
        "send.send_many_vs_publish_async_ratio",
        "receive.receive_vs_fetch_ack_ratio",
        "receive.receive_vs_fetch_ack_sync_ratio",
        "latency.p50_vs_raw_pull_ratio",
        "latency.p99_vs_raw_pull_ratio",
        "priority.n200.time_to_urgent_ratio",
        "lifecycle.agent_cost_vs_raw_consumer_ratio",
        "idle.idle_rss_ratio",
    ):
        assert key in ratios, key
        assert isinstance(ratios[key], (int, float)) or ratios[key] is None
    # The behaviour the benchmark exists to show, checked at smoke size.
    assert data["priority"]["n200"]["mailslot_position"] == 1
    assert data["priority"]["n200"]["raw_fifo_position"] == 201
    left = data["lifecycle"]["lapse"]["left_after_reclaim"]
    assert left == {"consumers": 0, "kv_entries": 0, "messages": 0}
    assert "Mailslot vs raw nats-py" in proc.stdout  # the table went to stdout
