"""Run a README's ```python blocks, in order, in one namespace, the way a reader pastes them
into a notebook: a block with top-level ``await`` runs on one event loop (kept on a thread
for the whole README, so what one block opens the next can use); a block without runs on the
main thread, where the sync twin (``mailslot.sync``) may block.

``python readme_snippets.py README.md [INDEX ...]`` runs every block (or the ones at those
indexes) with warnings as errors and prints ``snippets: OK``; :func:`run_readme` runs it as a
child process (a fresh interpreter per README, as a reader has) and returns its output.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import subprocess
import sys
import threading
import types
import warnings
from pathlib import Path
from typing import Any


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block (indented ones too, e.g. in a list)."""
    text = path.read_text()
    found = []
    for m in re.finditer(r"^( *)```python\n(.*?)^\1```", text, re.S | re.M):
        indent = len(m.group(1))
        code = "\n".join(line[indent:] for line in m.group(2).splitlines())
        found.append((text.count("\n", 0, m.start()) + 2, code))
    return found


def run_blocks(path: Path, only: list[int] | None = None) -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    module = types.ModuleType("__readme__")  # a real module: dataclasses look their module up
    sys.modules[module.__name__] = module
    ns: dict[str, Any] = module.__dict__
    try:
        for i, (line, code) in enumerate(python_blocks(path)):
            if only is not None and i not in only:
                continue
            compiled = compile(code, f"{path.name}:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            if compiled.co_flags & inspect.CO_COROUTINE:
                asyncio.run_coroutine_threadsafe(eval(compiled, ns), loop).result(timeout=120)
            else:
                exec(compiled, ns)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def run_readme(
    path: Path,
    env: dict[str, str],
    *,
    only: list[int] | None = None,
    expect: tuple[str, ...] = (),
    timeout: float = 240,
) -> str:
    """Run the README's blocks in a child process with ``env``; its stdout (fails with its
    output). Each of ``expect`` must be one whole line of that output (what a comment says
    the snippet prints)."""
    argv = [sys.executable, __file__, str(path), *(str(i) for i in only or [])]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=path.parent)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "snippets: OK" in r.stdout, out
    assert "ResourceWarning" not in r.stderr, out
    lines = r.stdout.splitlines()
    missing = [line for line in expect if line not in lines]
    assert not missing, (missing, out)
    return r.stdout


if __name__ == "__main__":
    warnings.simplefilter("error")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"crewai(\..*)?$")
    warnings.filterwarnings("ignore", category=ImportWarning)  # crewai's lazy submodules
    picked = [int(a) for a in sys.argv[2:]] or None
    run_blocks(Path(sys.argv[1]), picked)
    print("snippets: OK", flush=True)
