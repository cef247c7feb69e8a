"""notebooks/02_broadcast_and_ask.ipynb executes top to bottom against its own broker."""

from __future__ import annotations

from pathlib import Path

from testsupport import ROOT, run_notebook


def test_notebook_02_runs(tmp_path: Path) -> None:
    text = run_notebook(ROOT / "notebooks" / "02_broadcast_and_ask.ipynb", tmp_path, timeout=120)
    assert "build.done" in text and "build.step.lint clean ephemeral" in text
    # history first (last per topic), then the live one; the dropped ephemeral never shows
    assert "history weather.paris {'temp': 21}" in text
    assert "history weather.oslo {'temp': 4}" in text
    assert "live    weather.oslo {'temp': 5}" in text
    assert "99" not in text
    assert "answer: {'sum': 42}" in text and "mail: an unrelated memo" in text
    assert "collected later: {'sum': 2}" in text
    assert text.rstrip().endswith("done")
