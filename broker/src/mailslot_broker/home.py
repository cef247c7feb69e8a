"""Where the local broker lives: ``$MAILSLOT_HOME``, its state file and its credentials.

Both :mod:`.local` (which starts and stops the broker) and :mod:`.tenants` (which reloads it)
need to find the running broker and to serialise their changes to its files; keeping that
here lets each of them import it without importing the other.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

import platformdirs
from pydantic import BaseModel

from .config import Credentials
from .launcher import pid_alive

STATE_FILE = "broker.json"
#: The default tenant's credentials (other tenants' are under ``tenants/``).
CREDENTIALS_FILE = "credentials.json"
LOCK_FILE = "broker.lock"

M = TypeVar("M", bound=BaseModel)


def mailslot_home(*, create: bool = True) -> Path:
    """``$MAILSLOT_HOME`` or the per-user data dir; ``create=False`` for a reader that must
    leave no trace (``mailslot status``): the path may then not exist."""
    env = os.environ.get("MAILSLOT_HOME")
    path = Path(env) if env else Path(platformdirs.user_data_dir("mailslot", appauthor=False))
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def default_credentials_path(home: Path) -> Path:
    return home / CREDENTIALS_FILE


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
    #: ``detached`` (outlives its starter) or ``foreground`` (a ``mailslot up`` in a terminal).
    mode: Literal["detached", "foreground"] = "detached"
    #: MQTT / WebSocket listener ports (``up --mqtt`` / ``--websocket``), None when off.
    mqtt_port: int | None = None
    websocket_port: int | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def credentials(self) -> Credentials:
        return Credentials.read(self.credentials_path)

    @property
    def alive(self) -> bool:
        return pid_alive(self.pid, marker=self.config_path) and port_open(self.url)


def port_open(url: str) -> bool:
    hostport = url.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def home_locked(home: Path) -> Iterator[None]:
    """Serialises start/stop and tenant changes across processes, so that two first connects
    start one broker and a reload never races a restart."""
    with open(home / LOCK_FILE, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_model(path: Path, model: type[M]) -> M | None:
    """A record file, or None when it is missing or unreadable (half-written by a crash, or
    from an older version): the caller then acts as if nothing had been recorded."""
    try:
        return model.model_validate_json(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def read_state(home: Path | None = None) -> BrokerState | None:
    return read_model((home or mailslot_home()) / STATE_FILE, BrokerState)


def write_state(home: Path, state: BrokerState) -> None:
    tmp = home / (STATE_FILE + ".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(home / STATE_FILE)


def clear_state(home: Path) -> None:
    (home / STATE_FILE).unlink(missing_ok=True)


def running_state(home: Path | None = None) -> BrokerState | None:
    """The state of a live local broker, or None."""
    state = read_state(home)
    if state is not None and state.alive:
        return state
    return None
