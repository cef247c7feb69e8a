"""What ``mailslot up`` runs beside the local broker: the mq9 gateway (``--mq9``, package
``mailslot-mq9``) and the MQTT device bridge for the issued device logins (``--mqtt``).

With a foreground broker each is a child process, stopped with the broker. With ``--detach``
each is detached like the broker itself: its pid goes to ``$MAILSLOT_HOME/<name>.pid``, its
output to ``<name>.log``, and ``mailslot down`` stops it before the broker. A detached start
returns once the sidekick's log says it serves (readiness from the log, as the broker's own
launcher does), so the first request after ``up`` finds it serving.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailslot_broker.launcher import pid_alive, spawn_detached, terminate_pid

from .app import USAGE, fail

#: Seconds a sidekick gets to leave after SIGTERM before it is killed.
_GRACE = 5.0
#: How long a detached start waits for the sidekick's first "serving" line.
_READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Sidekick:
    name: str
    #: After ``python``: what runs it.
    command: tuple[str, ...]
    #: In its command line, so a recycled pid is never taken for it.
    marker: str
    #: What it logs once it serves.
    ready: bytes

    def argv(self, state: Any) -> list[str]:
        creds = str(state.credentials_path)
        return [sys.executable, *self.command, "--url", state.url, "--credentials", creds]

    def pid_file(self, home: Path) -> Path:
        return home / f"{self.name}.pid"

    def log_file(self, home: Path) -> Path:
        return home / f"{self.name}.log"


MQ9 = Sidekick("mq9", ("-m", "mailslot_mq9"), "mailslot_mq9", b": serving $mq9.AI.>")
DEVICES = Sidekick("devices", ("-m", "mailslot", "devices", "--issued"), "devices --issued", b"bridging ")
ALL = (MQ9, DEVICES)


def check_mq9(cluster: bool) -> None:
    """Refuse ``--mq9`` before the broker starts when it cannot be honoured."""
    if cluster:
        fail("--mq9 serves the single local broker; with --cluster run `mailslot mq9 --url ...`", USAGE)
    if importlib.util.find_spec(MQ9.marker) is None:
        fail("--mq9 needs the package mailslot-mq9: pip install mailslot-mq9")


def start(kick: Sidekick, state: Any) -> subprocess.Popen[bytes]:
    """A child of this (foreground) process, on the local broker; its output goes to ours."""
    return subprocess.Popen(kick.argv(state))


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _detached_pid(kick: Sidekick, home: Path) -> int | None:
    try:
        pid = int(kick.pid_file(home).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid, marker=kick.marker) else None


def running(kick: Sidekick, home: Path) -> bool:
    """Whether this home's detached ``kick`` runs."""
    return home.is_dir() and _detached_pid(kick, home) is not None


def start_detached(kick: Sidekick, state: Any, home: Path) -> int:
    """The detached sidekick's pid: the one already running for this home, or a new one
    once its log says it serves."""
    pid = _detached_pid(kick, home)
    if pid is not None:
        return pid
    log_path = kick.log_file(home)
    with open(log_path, "ab") as log:
        start = log.tell()
        pid = spawn_detached(kick.argv(state), log=log, stdout_to_log=True)
    kick.pid_file(home).write_text(f"{pid}\n")
    deadline = time.monotonic() + _READY_TIMEOUT
    while kick.ready not in _read_from(log_path, start):
        if not pid_alive(pid, marker=kick.marker):
            time.sleep(0.2)  # asked once more: a start-up seen mid-exec is not an exit
            if not pid_alive(pid, marker=kick.marker):
                stop_detached(kick, home)
                fail(f"the {kick.name} process exited at start: see {log_path}")
        if time.monotonic() > deadline:
            stop_detached(kick, home)
            fail(f"the {kick.name} process did not serve within {_READY_TIMEOUT:.0f} s: see {log_path}")
        time.sleep(0.1)
    return pid


def _read_from(path: Path, offset: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read()


def stop_detached(kick: Sidekick, home: Path) -> bool:
    """Stop the detached sidekick of this home; False if none ran."""
    pid = _detached_pid(kick, home)
    kick.pid_file(home).unlink(missing_ok=True)
    if pid is None:
        return False
    terminate_pid(pid, kick.marker, _GRACE)
    return True
