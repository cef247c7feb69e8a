"""The embedded default: one detached local broker per user, found through a state file.

Offline delivery between processes is the point of Mailslot, so the broker a script starts
must outlive that script. The first ``connect()`` starts it detached and records where it is
in ``$MAILSLOT_HOME/broker.json``; every later process reads that file and reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import platformdirs
from pydantic import BaseModel

from .config import Credentials
from .errors import LauncherError
from .launcher import pid_alive

STATE_FILE = "broker.json"
CREDENTIALS_FILE = "credentials.json"


def mailslot_home() -> Path:
    """``$MAILSLOT_HOME`` or the per-user data dir."""
    env = os.environ.get("MAILSLOT_HOME")
    path = Path(env) if env else Path(platformdirs.user_data_dir("mailslot", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


class BrokerState(BaseModel):
    """What a later process needs to find and use the local broker."""

    url: str
    pid: int
    config_path: str
    credentials_path: str
    workdir: str
    version: str | None = None
    started_at: datetime
    sidecar_pid: int | None = None
    metrics_url: str | None = None
    health_url: str | None = None

    def credentials(self) -> Credentials:
        return Credentials.read(self.credentials_path)

    @property
    def alive(self) -> bool:
        return pid_alive(self.pid, marker=self.config_path) and _port_open(self.url)


def _port_open(url: str) -> bool:
    hostport = url.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Serialises start/stop across processes so two first connects start one broker."""
    with open(home / "broker.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_state(home: Path | None = None) -> BrokerState | None:
    path = (home or mailslot_home()) / STATE_FILE
    try:
        return BrokerState.model_validate_json(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_state(home: Path, state: BrokerState) -> None:
    tmp = home / (STATE_FILE + ".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(home / STATE_FILE)


def running_state(home: Path | None = None) -> BrokerState | None:
    """The state of a live local broker, or None."""
    state = read_state(home)
    if state is not None and state.alive:
        return state
    return None


SIDECAR_MARKER = "mailslot_broker.sidecar"
SIDECAR_READY_FILE = "sidecar.json"


def _start_sidecar(home: Path, state: BrokerState, timeout: float) -> BrokerState:
    """Start ``python -m mailslot_broker.sidecar`` detached (like the server) and record where
    its metrics and health endpoints are. It exits by itself when the server process is gone."""
    import json
    import subprocess
    import sys

    ready = home / SIDECAR_READY_FILE
    ready.unlink(missing_ok=True)
    argv = [
        sys.executable,
        "-m",
        SIDECAR_MARKER,
        "--url",
        state.url,
        "--credentials",
        state.credentials_path,
        "--http-port",
        "0",
        "--exit-with-pid",
        str(state.pid),
        "--ready-file",
        str(ready),
    ]
    with open(home / "sidecar.log", "ab") as log:
        launcher = subprocess.run(
            ["/bin/sh", "-c", 'exec 0</dev/null; "$@" 1>/dev/null & echo $!', "sh", *argv],
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            check=True,
        )
    pid = int(launcher.stdout.decode().strip())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = json.loads(ready.read_text())
            return state.model_copy(
                update={
                    "sidecar_pid": pid,
                    "metrics_url": info.get("metrics_url"),
                    "health_url": info.get("health_url"),
                }
            )
        except (FileNotFoundError, ValueError):
            pass
        if not pid_alive(pid, marker=SIDECAR_MARKER):
            raise LauncherError(f"the sidecar exited during start-up; see {home / 'sidecar.log'}")
        time.sleep(0.05)
    raise LauncherError(f"the sidecar did not start within {timeout:.0f} s")


def ensure_local_broker(
    home: Path | None = None, *, port: int = 0, timeout: float = 30.0, with_sidecar: bool = True
) -> BrokerState:
    """Find the running local broker or start one, detached (with its sidecar unless
    ``with_sidecar=False``; a dead sidecar of a live broker is restarted)."""
    home = home or mailslot_home()
    with _locked(home):
        state = running_state(home)
        if state is not None:
            if with_sidecar and not (
                state.sidecar_pid and pid_alive(state.sidecar_pid, marker=SIDECAR_MARKER)
            ):
                state = _start_sidecar(home, state, timeout)
                _write_state(home, state)
            return state
        workdir = home / "broker"
        # Tenants (default first, with the credentials.json handed out before), their limits
        # and the system password persist in tenants.json so restarts and reloads regenerate
        # the same config.
        from .tenants import load_or_init, local_server

        server = local_server(workdir, port=port, tenants=load_or_init(home))
        creds_path = home / CREDENTIALS_FILE
        server.start(detached=True, timeout=timeout)
        server.credentials.write(creds_path)
        assert server.pid is not None
        state = BrokerState(
            url=server.url,
            pid=server.pid,
            config_path=str(server.config_path),
            credentials_path=str(creds_path),
            workdir=str(workdir),
            version=server.version,
            started_at=datetime.now(timezone.utc),
        )
        _write_state(home, state)
        if with_sidecar:
            state = _start_sidecar(home, state, timeout)
            _write_state(home, state)
        return state


def stop_local_broker(home: Path | None = None, *, grace: float = 15.0) -> bool:
    """Stop the local broker and its sidecar. Returns False if none was running."""
    home = home or mailslot_home()
    with _locked(home):
        state = read_state(home)
        if state is None:
            return False
        stopped = False
        if state.sidecar_pid and pid_alive(state.sidecar_pid, marker=SIDECAR_MARKER):
            _terminate(state.sidecar_pid, SIDECAR_MARKER, grace)
        if pid_alive(state.pid, marker=state.config_path):
            _terminate(state.pid, state.config_path, grace)
            stopped = True
        (home / STATE_FILE).unlink(missing_ok=True)
        return stopped


def _terminate(pid: int, marker: str, grace: float) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid, marker=marker):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pid_alive(pid, marker=marker):
        if time.monotonic() > deadline:
            raise LauncherError(f"process {pid} did not exit after SIGKILL")
        time.sleep(0.02)
