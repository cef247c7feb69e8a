"""The embedded default: one local broker per user, found through a state file.

Offline delivery between processes is the point of Mailslot, so the broker a script starts
must outlive that script. The first ``connect()`` starts it detached and records where it is
in ``$MAILSLOT_HOME/broker.json``; every later process reads that file and reuses it. A
foreground ``mailslot up`` records itself in the same file, so nothing starts a second broker
next to it.

Connected clients reconnect to the URL they were given, so the broker's address must survive
``down``/``up`` and crashes: the port is chosen once (by the server, on first start) and kept
in ``endpoint.json``, which ``down`` leaves alone, as it leaves the store and the credentials.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from .errors import LauncherError, ServerStartError
from .home import (
    CREDENTIALS_FILE,
    STATE_FILE,
    BrokerState,
    clear_state,
    default_credentials_path,
    home_locked,
    mailslot_home,
    port_open,
    read_model,
    read_state,
    running_state,
    write_state,
)
from .launcher import NatsServer, pid_alive, spawn_detached, terminate_pid
from .tenants import load_or_init, local_server

#: ``mailslot_broker.local`` is where callers have always found the broker's files and state.
__all__ = [
    "CREDENTIALS_FILE",
    "ENDPOINT_FILE",
    "SIDECAR_MARKER",
    "STATE_FILE",
    "BrokerState",
    "Endpoint",
    "Listeners",
    "ensure_local_broker",
    "mailslot_home",
    "read_endpoint",
    "read_state",
    "running_state",
    "start_foreground_broker",
    "stop_foreground_broker",
    "stop_local_broker",
]

ENDPOINT_FILE = "endpoint.json"
BROKER_DIR = "broker"
LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Listeners:
    """The MQTT and WebSocket listeners of one start: None = off, 0 = a port the server picks."""

    mqtt_port: int | None = None
    websocket_port: int | None = None


NO_LISTENERS = Listeners()


class Endpoint(BaseModel):
    """Where the local broker listens, kept across ``down``/``up`` and crashes so that clients
    holding its URL find it again."""

    host: str = LOCAL_HOST
    port: int
    chosen_at: datetime

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"


def read_endpoint(home: Path | None = None) -> Endpoint | None:
    return read_model((home or mailslot_home()) / ENDPOINT_FILE, Endpoint)


def _write_endpoint(home: Path, port: int) -> None:
    current = read_endpoint(home)
    if current is not None and current.port == port:
        return
    tmp = home / (ENDPOINT_FILE + ".tmp")
    tmp.write_text(Endpoint(port=port, chosen_at=datetime.now(timezone.utc)).model_dump_json(indent=2))
    tmp.replace(home / ENDPOINT_FILE)


def _port_taken(host: str, port: int) -> bool:
    """Whether something listens on ``port``. SO_REUSEADDR as nats-server (Go) sets it, so the
    TIME_WAIT connections a crashed broker leaves behind do not count as taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _port_in_use_error(home: Path, port: int, kept: bool) -> LauncherError:
    where = f"the local broker's port, kept in {home / ENDPOINT_FILE}" if kept else "the requested port"
    return LauncherError(
        f"port {port} ({where}) is in use by another process; stop that process, or start "
        f"the broker on another port with `mailslot up --port N` (which is then kept)"
    )


SIDECAR_MARKER = "mailslot_broker.sidecar"
SIDECAR_READY_FILE = "sidecar.json"


def _start_sidecar(home: Path, state: BrokerState, timeout: float) -> BrokerState:
    """Start ``python -m mailslot_broker.sidecar`` detached (like the server) and record where
    its metrics and health endpoints are. It exits by itself when the server process is gone."""
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
        pid = spawn_detached(argv, log=log, stdout_to_log=False)
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
    home: Path | None = None,
    *,
    port: int = 0,
    timeout: float = 30.0,
    with_sidecar: bool = True,
    listeners: Listeners = NO_LISTENERS,
) -> BrokerState:
    """Find the running local broker (detached or foreground) or start one, detached (with its
    sidecar unless ``with_sidecar=False``; a dead sidecar of a live broker is restarted).

    ``port=0`` means the kept port (or, on the very first start, one the server picks);
    another port moves the broker there and is kept from then on. ``listeners`` turns on the
    MQTT / WebSocket listeners for this start.
    """
    home = home or mailslot_home()
    with home_locked(home):
        state = _live_or_cleared(home, timeout)
        if state is not None:
            _check_listeners(state, listeners)
            if port and port != state.port:
                raise LauncherError(
                    f"the local broker already runs at {state.url} (pid {state.pid}); "
                    f"`mailslot down` first to move it to port {port}"
                )
            if with_sidecar and not _sidecar_alive(state):
                state = _start_sidecar(home, state, timeout)
                write_state(home, state)
            return state
        _, state = _launch(home, port=port, detached=True, timeout=timeout, listeners=listeners)
        if with_sidecar:
            state = _start_sidecar(home, state, timeout)
            write_state(home, state)
        _announce(home, state)
        return state


def start_foreground_broker(
    home: Path | None = None,
    *,
    port: int = 0,
    listeners: Listeners = NO_LISTENERS,
    timeout: float = 30.0,
    with_sidecar: bool = True,
) -> tuple[NatsServer, BrokerState]:
    """Start the local broker as a child of this process (``mailslot up`` in a terminal),
    recorded in the same state file as a detached one so that ``status`` sees it and
    ``connect()`` uses it instead of starting another. Stop it with :func:`stop_foreground_broker`.
    """
    home = home or mailslot_home()
    with home_locked(home):
        state = _live_or_cleared(home, timeout)
        if state is not None:
            raise LauncherError(
                f"a {state.mode} local broker is already running at {state.url} (pid {state.pid}); "
                "use `mailslot down` first"
            )
        server, state = _launch(home, port=port, detached=False, timeout=timeout, listeners=listeners)
        try:
            if with_sidecar:
                state = _start_sidecar(home, state, timeout)
                write_state(home, state)
        except BaseException:
            server.stop(grace=2.0)
            clear_state(home)
            raise
        _announce(home, state)
        return server, state


def stop_foreground_broker(
    server: NatsServer, state: BrokerState, home: Path | None = None, *, grace: float = 15.0
) -> None:
    """Stop a broker started by :func:`start_foreground_broker` and mark it stopped. The state
    file is removed only if it still describes this broker: a later ``up`` may own it now."""
    home = home or mailslot_home()
    with home_locked(home):
        if state.sidecar_pid and pid_alive(state.sidecar_pid, marker=SIDECAR_MARKER):
            terminate_pid(state.sidecar_pid, SIDECAR_MARKER, grace)
        server.stop(grace=grace)
        current = read_state(home)
        if current is not None and current.pid == state.pid:
            clear_state(home)


def _sidecar_alive(state: BrokerState) -> bool:
    return bool(state.sidecar_pid and pid_alive(state.sidecar_pid, marker=SIDECAR_MARKER))


def _live_or_cleared(home: Path, timeout: float) -> BrokerState | None:
    """The live broker's state; otherwise the leftovers of a dead one (its sidecar, its state
    file) are cleared so that a new start reuses the port and store without a fight."""
    state = read_state(home)
    if state is None:
        return None
    if state.alive:
        return state
    if pid_alive(state.pid, marker=state.config_path):
        # Running but not answering: starting up or shutting down. Either way it holds the
        # store, so wait for it to settle rather than start a second server on it.
        deadline = time.monotonic() + timeout
        while pid_alive(state.pid, marker=state.config_path):
            if port_open(state.url):
                return state
            if time.monotonic() > deadline:
                raise LauncherError(
                    f"the local broker (pid {state.pid}) runs but does not answer at {state.url}; "
                    "stop it with `mailslot down`"
                )
            time.sleep(0.05)
    if _sidecar_alive(state):
        assert state.sidecar_pid is not None
        terminate_pid(state.sidecar_pid, SIDECAR_MARKER, 5.0)
    clear_state(home)
    return None


def _check_listeners(state: BrokerState, listeners: Listeners) -> None:
    """A running broker without a listener that was asked for cannot grow one here."""
    asked = (
        ("MQTT", listeners.mqtt_port, state.mqtt_port),
        ("WebSocket", listeners.websocket_port, state.websocket_port),
    )
    for what, wanted, has in asked:
        if wanted is not None and (has is None or (wanted and wanted != has)):
            raise LauncherError(
                f"the local broker already runs at {state.url} without that {what} listener; "
                "`mailslot down` first"
            )


def _launch(
    home: Path,
    *,
    port: int,
    detached: bool,
    timeout: float,
    listeners: Listeners = NO_LISTENERS,
) -> tuple[NatsServer, BrokerState]:
    """Start nats-server on the kept port (or ``port``, or the server's pick the first time)
    and record it. Tenants (default first, with the credentials handed out before), their
    limits and the system password persist in tenants.json, so every start generates the
    same config and the same credentials."""
    kept = read_endpoint(home)
    chosen = port or (kept.port if kept else 0)
    is_kept = not port and kept is not None
    if chosen and _port_taken(LOCAL_HOST, chosen):
        raise _port_in_use_error(home, chosen, is_kept)
    workdir = home / BROKER_DIR
    server = local_server(
        workdir,
        port=chosen,
        tenants=load_or_init(home),
        mqtt_port=listeners.mqtt_port,
        websocket_port=listeners.websocket_port,
    )
    try:
        server.start(detached=detached, timeout=timeout)
    except ServerStartError as exc:
        if chosen and "address already in use" in str(exc):  # taken between check and start
            raise _port_in_use_error(home, chosen, is_kept) from exc
        raise
    assert server.pid is not None and server.port is not None
    _write_endpoint(home, server.port)
    creds_path = default_credentials_path(home)
    server.credentials.write(creds_path)
    state = BrokerState(
        url=server.url,
        pid=server.pid,
        config_path=str(server.config_path),
        credentials_path=str(creds_path),
        workdir=str(workdir),
        version=server.version,
        started_at=datetime.now(timezone.utc),
        mode="detached" if detached else "foreground",
        mqtt_port=server.config.mqtt_port,
        websocket_port=server.config.websocket_port,
    )
    write_state(home, state)
    return server, state


def _announce(home: Path, state: BrokerState) -> None:
    """One line on stderr: a command that starts a broker as a side effect must not do so
    silently, or the user cannot tell which broker their mail went to."""
    print(f"mailslot: started the local broker at {state.url} (state in {home})", file=sys.stderr, flush=True)


def stop_local_broker(home: Path | None = None, *, grace: float = 15.0) -> bool:
    """Stop the local broker (detached or foreground) and its sidecar. Returns False if none
    was running. The port, store and credentials are kept for the next start."""
    home = home or mailslot_home()
    with home_locked(home):
        state = read_state(home)
        if state is None:
            return False
        stopped = False
        if _sidecar_alive(state):
            assert state.sidecar_pid is not None
            terminate_pid(state.sidecar_pid, SIDECAR_MARKER, grace)
        if pid_alive(state.pid, marker=state.config_path):
            terminate_pid(state.pid, state.config_path, grace)
            stopped = True
        clear_state(home)
        return stopped
