"""``mailslot up --mq9``: the mq9 gateway (package ``mailslot-mq9``) as a child process of a
foreground broker, started once the broker is up and stopped with it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

from .app import USAGE, fail

#: Seconds the gateway gets to leave after SIGTERM before it is killed.
_GRACE = 5.0


def check_available(detach: bool) -> None:
    """Refuse ``--mq9`` before the broker starts when it cannot be honoured."""
    if detach:
        fail(
            "--mq9 runs the gateway beside a foreground broker; drop --detach (or run `mailslot mq9`)", USAGE
        )
    if importlib.util.find_spec("mailslot_mq9") is None:
        fail("--mq9 needs the package mailslot-mq9: pip install mailslot-mq9")


def start(state: Any) -> subprocess.Popen[bytes]:
    """``mailslot-mq9`` on the local broker, with its credentials; its output goes to ours."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mailslot_mq9",
            "--url",
            state.url,
            "--credentials",
            str(state.credentials_path),
        ]
    )


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
