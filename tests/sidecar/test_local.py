"""The embedded local broker starts its sidecar; status shows where its endpoints are."""

from __future__ import annotations

import json
import urllib.request

from mailslot.cli import app
from mailslot_broker import ensure_local_broker, read_state, stop_local_broker
from mailslot_broker.launcher import pid_alive
from typer.testing import CliRunner


def test_local_broker_runs_sidecar_and_status_reports_it() -> None:
    state = ensure_local_broker()
    try:
        assert state.sidecar_pid and pid_alive(state.sidecar_pid, marker="mailslot_broker.sidecar")
        assert state.metrics_url and state.health_url
        with urllib.request.urlopen(state.health_url, timeout=5) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(state.metrics_url, timeout=5) as resp:
            assert b"mailslot_leases_active" in resp.read()
        again = ensure_local_broker()
        assert again.sidecar_pid == state.sidecar_pid  # reused, not restarted
        res = CliRunner().invoke(app, ["status", "--json"])
        assert res.exit_code == 0, res.output
        info = json.loads(res.stdout)
        assert info["metrics_url"] == state.metrics_url
        assert info["health_url"] == state.health_url
    finally:
        stop_local_broker()
    assert not pid_alive(state.sidecar_pid, marker="mailslot_broker.sidecar")
    assert read_state() is None
