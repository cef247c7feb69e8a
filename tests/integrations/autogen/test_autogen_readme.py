"""Every python block of the mailslot-autogen README runs as written, in order (offline replay
models, a real server), and prints what its comments say."""

from mailslot_broker import NatsServer
from readme_snippets import run_readme
from testsupport import ROOT, client_env


def test_the_readme_runs(server: NatsServer) -> None:
    out = run_readme(
        ROOT / "integrations" / "autogen" / "README.md",
        client_env(server),
        expect=(
            "LGTM, ship it",
            "still LGTM",
            "Total(value=2)",
            "Total(value=5)",
            "docs.a.counter",
            "28.0",
            "('docs', 'counter', 'c1')",
            "{'total': 5}",
        ),
    )
    first = out.splitlines()[0]
    assert first.startswith("alice application/json {'pr': 7, 'verdict': 'needs tests'}"), out
