"""notebooks/02_broadcast_and_ask.ipynb executes top to bottom against its own broker."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from testsupport import ROOT


def test_notebook_02_runs(tmp_path: Path) -> None:
    nb = nbformat.read(ROOT / "notebooks" / "02_broadcast_and_ask.ipynb", as_version=4)
    # kernel "python3" is ipykernel's built-in spec: jupyter_client runs it with this interpreter.
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    text = "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )
    assert "build.done" in text and "build.step.lint clean ephemeral" in text
    # history first (last per topic), then the live one; the dropped ephemeral never shows
    assert "history weather.paris {'temp': 21}" in text
    assert "history weather.oslo {'temp': 4}" in text
    assert "live    weather.oslo {'temp': 5}" in text
    assert "99" not in text
    assert "answer: {'sum': 42}" in text and "mail: an unrelated memo" in text
    assert "collected later: {'sum': 2}" in text
    assert text.rstrip().endswith("done")
