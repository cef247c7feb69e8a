"""Every python block of the mailslot-crewai README runs as written, in order (scripted LLM,
a real server, offline, its own HOME), and prints what its comments say."""

from pathlib import Path

from _kit import CREWAI_OFFLINE
from mailslot_broker import NatsServer
from readme_snippets import run_readme
from testsupport import ROOT, client_env


def test_the_readme_runs(server: NatsServer, _crewai_offline: Path) -> None:
    env = {**client_env(server), **CREWAI_OFFLINE, "HOME": str(_crewai_offline)}
    run_readme(
        ROOT / "integrations" / "crewai" / "README.md",
        env,
        expect=(
            "review requested",
            "planner application/json {'pr': 7, 'files': ['auth.py']}",
            "HumanFeedbackPending",
            "['emit', 'flow_class', 'flow_id', 'message', 'method', 'output']",
            "Approve? release notes v1 release-replies",
            "True published after review: ship it",
            "approved published after review: approved",
            "ReplyToInUse",
            "[]",
            "summary of NATS ok",
        ),
    )
