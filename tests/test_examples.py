"""The README demo and the notebooks run in the test suite."""

import os
import subprocess

import pytest
from mailslot_broker import running_state
from testsupport import PYTHON, ROOT, run_notebook


def test_demo_runs_on_the_embedded_broker(_isolated_home):
    env = dict(os.environ, MAILSLOT_HOME=str(_isolated_home))
    r = subprocess.run(
        [PYTHON, str(ROOT / "examples" / "demo.py")], env=env, capture_output=True, text=True, timeout=180
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert out.index("PROD IS DOWN") < out.index("refactor module 1")
    assert "this one expires" not in out
    assert "reclaimed temp-worker: 0 message(s) left" in out
    assert "late subscriber replayed build.done" in out
    assert "got: LGTM" in out


@pytest.mark.parametrize("name", ["01_quickstart.ipynb"])
def test_notebook(name, tmp_path, _isolated_home):
    """The quickstart connects as the README does (the local broker, started on first use)
    and stops the broker it started."""
    run_notebook(ROOT / "notebooks" / name, tmp_path)
    assert running_state(_isolated_home) is None
