"""Every python block of the mailslot-langgraph README runs as written, in order (scripted
model, a real server), and prints what its comments say."""

from mailslot_broker import NatsServer
from readme_snippets import run_readme
from testsupport import ROOT, client_env


def test_the_readme_runs(server: NatsServer) -> None:
    env = client_env(server)
    for var in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY"):
        env.pop(var, None)
    run_readme(
        ROOT / "integrations" / "langgraph" / "README.md",
        env,
        expect=(
            "monitor disk 95% full",
            "planner urgent disk 95% full",
            "GraphOutput await_reply",
            "planner {'task': 'SSO'} planner._replies",
            "1",
            "sso-1 {'task': 'SSO', 'days': 3}",
            "billing-1",
            "5",
            "planner application/json {'issue': 7}",
        ),
    )
