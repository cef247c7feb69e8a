"""Starting ``mailslot-mcp --http`` for a test and stopping it. Shared by conftest.py (the mcp
1.x environment) and mcp2_driver.py (run by the ``.venv-mcp2`` interpreter, which has no
pytest): the standard library only."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def http_server_process(
    python: str,
    tokens: Path,
    log: Path,
    *,
    env: dict[str, str] | None = None,
    options: Sequence[str] = (),
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m mailslot_mcp --http`` on a free 127.0.0.1 port with the token file
    ``tokens``, its output in ``log``; yields its URL and process once it listens, and stops
    it when the block ends."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [python, "-m", "mailslot_mcp", "--http", f"127.0.0.1:{port}", "--tokens", str(tokens), *options],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mailslot-mcp --http did not start: {log.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
