"""The README's first example runs as written and shows who sent the mail: ``connect(name=)``
is the sender of what the connection sends."""

from mailslot_broker import NatsServer
from readme_snippets import python_blocks, run_readme
from testsupport import ROOT, client_env


def test_the_first_example_runs_and_names_its_sender(server: NatsServer) -> None:
    line, code = python_blocks(ROOT / "README.md")[0]
    assert 'connect(name="planner")' in code, (line, code)
    run_readme(ROOT / "README.md", client_env(server), only=[0], expect=("planner {'issue': 7}",))
