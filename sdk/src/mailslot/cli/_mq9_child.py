"""``mailslot up --mq9``: the mq9 gateway (package ``mailslot-mq9``) beside the local broker.

With a foreground broker it is a child process, stopped with the broker. With ``--detach`` it
is detached like the broker itself: its pid goes to ``$MAILSLOT_HOME/mq9.pid``, its output to
``mq9.log``, and ``mailslot down`` stops it before the broker. A detached start returns once
the gateway answers, so the first mq9 request after ``up`` finds it serving.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mailslot_broker.launcher import pid_alive, spawn_detached, terminate_pid

from .app import USAGE, fail

#: Seconds the gateway gets to leave after SIGTERM before it is killed.
_GRACE = 5.0
#: How long a detached start waits for the gateway's first answer.
_READY_TIMEOUT = 30.0
#: In the gateway's command line: a recycled pid is never taken for it.
MARKER = "mailslot_mq9"
PID_FILE = "mq9.pid"
LOG_FILE = "mq9.log"
#: What the gateway logs once it serves (``mailslot_mq9.__main__``).
READY = b": serving $mq9.AI.>"


def check_available(cluster: bool) -> None:
    """Refuse ``--mq9`` before the broker starts when it cannot be honoured."""
    if cluster:
        fail("--mq9 serves the single local broker; with --cluster run `mailslot mq9 --url ...`", USAGE)
    if importlib.util.find_spec(MARKER) is None:
        fail("--mq9 needs the package mailslot-mq9: pip install mailslot-mq9")


def _argv(state: Any) -> list[str]:
    return [sys.executable, "-m", MARKER, "--url", state.url, "--credentials", str(state.credentials_path)]


def start(state: Any) -> subprocess.Popen[bytes]:
    """``mailslot-mq9`` on the local broker, with its credentials; its output goes to ours."""
    return subprocess.Popen(_argv(state))


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _detached_pid(home: Path) -> int | None:
    try:
        pid = int((home / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid, marker=MARKER) else None


def start_detached(state: Any, home: Path) -> int:
    """The detached gateway's pid: the one already running for this home, or a new one, once
    its log says it serves (readiness from the log, as the broker's own launcher does)."""
    pid = _detached_pid(home)
    if pid is not None:
        return pid
    log_path = home / LOG_FILE
    with open(log_path, "ab") as log:
        start = log.tell()
        pid = spawn_detached(_argv(state), log=log, stdout_to_log=True)
    (home / PID_FILE).write_text(f"{pid}\n")
    deadline = time.monotonic() + _READY_TIMEOUT
    while READY not in _read_from(log_path, start):
        if not pid_alive(pid, marker=MARKER):
            stop_detached(home)
            fail(f"the mq9 gateway exited at start: see {log_path}")
        if time.monotonic() > deadline:
            stop_detached(home)
            fail(f"the mq9 gateway did not start serving within {_READY_TIMEOUT:.0f} s: see {log_path}")
        time.sleep(0.1)
    return pid


def _read_from(path: Path, offset: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read()


def stop_detached(home: Path) -> bool:
    """Stop the detached gateway of this home; False if none ran."""
    pid = _detached_pid(home)
    (home / PID_FILE).unlink(missing_ok=True)
    if pid is None:
        return False
    terminate_pid(pid, MARKER, _GRACE)
    return True
