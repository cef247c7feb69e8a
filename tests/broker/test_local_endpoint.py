"""The local broker is a stable endpoint: its URL, store and credentials survive ``down``/``up``
and a crash of nats-server, a foreground ``mailslot up`` is the local broker for every other
command, and nothing starts a broker without saying so."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mailslot
import nats
import pytest
from mailslot.cli import app
from mailslot_broker import Credentials, LauncherError, ensure_local_broker, read_state, stop_local_broker
from mailslot_broker.launcher import pid_alive
from mailslot_broker.local import SIDECAR_MARKER, read_endpoint
from typer.testing import CliRunner

STARTED = "mailslot: started the local broker at nats://127.0.0.1:"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailslot", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, COLUMNS="200"),  # MAILSLOT_HOME from the isolated fixture
    )


def wait_dead(pid: int, marker: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid, marker=marker):
        assert time.monotonic() < deadline, f"pid {pid} still alive"
        time.sleep(0.02)


async def _quiet(exc: Exception) -> None:
    return None


async def _quiet_event() -> None:
    return None


async def mail_count(url: str, creds: str, address: str) -> int:
    async with mailslot.connect(url, credentials=creds) as ms:
        return (await ms.inspect(address).stats()).total


async def test_down_up_keeps_url_store_and_credentials(_isolated_home: Path) -> None:
    try:
        first = ensure_local_broker(with_sidecar=False)
        creds = Credentials.read(first.credentials_path)
        async with mailslot.connect(first.url, credentials=first.credentials_path) as ms:
            await ms.send("bob", "sent before down")
        # A plain client with reconnects on: the stable URL is what lets it come back.
        nc = await nats.connect(
            first.url,
            user=creds.user,
            password=creds.password,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.1,
            error_cb=_quiet,
            disconnected_cb=_quiet_event,
        )
        try:
            assert stop_local_broker()
            assert read_state() is None
            assert read_endpoint() is not None and read_endpoint().url == first.url  # type: ignore[union-attr]
            second = ensure_local_broker(with_sidecar=False)
            assert second.url == first.url and second.pid != first.pid
            assert Credentials.read(second.credentials_path) == creds
            assert await mail_count(second.url, second.credentials_path, "bob") == 1
            deadline = time.monotonic() + 15
            while not nc.is_connected:  # it reconnects by itself to the restarted broker
                assert time.monotonic() < deadline, "the client did not reconnect"
                await asyncio.sleep(0.05)
            await nc.flush(timeout=5)
            assert nc.connected_url is not None and nc.connected_url.port == second.port
        finally:
            await nc.close()
    finally:
        stop_local_broker()


async def test_kill9_then_ensure_restarts_on_the_same_port(_isolated_home: Path) -> None:
    try:
        first = ensure_local_broker()
        assert first.sidecar_pid is not None
        async with mailslot.connect(first.url, credentials=first.credentials_path) as ms:
            await ms.send("bob", "before the crash")
        os.kill(first.pid, signal.SIGKILL)
        wait_dead(first.pid, first.config_path)
        second = ensure_local_broker()
        assert second.url == first.url and second.pid != first.pid
        assert second.sidecar_pid is not None and second.sidecar_pid != first.sidecar_pid
        assert not pid_alive(first.sidecar_pid, marker=SIDECAR_MARKER)  # the orphan was stopped
        assert await mail_count(second.url, second.credentials_path, "bob") == 1
    finally:
        stop_local_broker()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_kept_port_taken_by_a_foreign_listener_is_a_clear_error(_isolated_home: Path) -> None:
    first = ensure_local_broker(with_sidecar=False)
    stop_local_broker()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", first.port))
    squatter.listen()
    try:
        with pytest.raises(LauncherError, match=rf"port {first.port} .*in use.*mailslot up --port N"):
            ensure_local_broker(with_sidecar=False)
        assert read_state() is None
        res = CliRunner().invoke(app, ["up", "--detach"])
        assert res.exit_code == 1
        assert f"port {first.port}" in res.stderr and "--port" in res.stderr
        # Choosing another port moves the broker there, and that port is kept.
        other = _free_port()
        res = CliRunner().invoke(app, ["up", "--detach", "--port", str(other), "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["url"] == f"nats://127.0.0.1:{other}"
        stop_local_broker()
        again = ensure_local_broker(with_sidecar=False)
        assert again.port == other
    finally:
        squatter.close()
        stop_local_broker()


def test_starting_says_so_on_stderr_once(_isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        state = ensure_local_broker(with_sidecar=False)
        err = capsys.readouterr().err
        assert err == f"{STARTED}{state.port} (state in {_isolated_home})\n"
        ensure_local_broker(with_sidecar=False)
        assert capsys.readouterr().err == ""  # found, not started
    finally:
        stop_local_broker()


async def test_implicit_start_by_connect_says_so(
    _isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        async with mailslot.connect() as ms:
            url = ms.url
        assert f"mailslot: started the local broker at {url} (state in {_isolated_home})" in (
            capsys.readouterr().err
        )
    finally:
        stop_local_broker()


def test_foreground_up_is_the_local_broker_for_every_command(_isolated_home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailslot", "up", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    state = None
    try:
        buf = ""
        deadline = time.monotonic() + 60
        while state is None and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, f"mailslot up exited: {proc.stderr.read()}"  # type: ignore[union-attr]
            buf += line
            try:
                state = json.loads(buf)
            except ValueError:
                continue
        assert state is not None and state["mode"] == "foreground"

        st = cli("status", "--json")
        assert st.returncode == 0, st.stderr
        info = json.loads(st.stdout)
        assert info["running"] and info["mode"] == "foreground"
        assert info["pid"] == state["pid"] and info["url"] == state["url"]
        assert info["credentials"] == state["credentials_path"]
        assert Credentials.read(info["credentials"]).tenant == "MAILSLOT"

        sent = cli("send", "bob", "hello")
        assert sent.returncode == 0, sent.stderr
        assert "started the local broker" not in sent.stderr
        now = read_state()
        assert now is not None and now.pid == state["pid"]  # no second broker
        counted = cli("status", "--json")
        assert json.loads(counted.stdout)["streams"]["MAILSLOT_MAIL"]["messages"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert proc.returncode == 0
    assert state is not None
    assert not pid_alive(state["pid"])
    assert read_state() is None  # marked stopped...
    after = json.loads(cli("status", "--json").stdout)
    assert not after["running"] and after["url"] == state["url"]  # ...with its endpoint kept
