"""``mailslot-mq9`` and ``mailslot mq9`` as processes: a gateway started from the shell serves
an mq9 request, and ``--once`` checks a setup."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nats
from mailslot_broker import Credentials, NatsServer
from mailslot_broker.launcher import pid_alive
from mq9_support import Mq9, connect
from nats.errors import NoRespondersError
from testsupport import client_env


def test_once_checks_the_setup(server: NatsServer) -> None:
    env = client_env(server)
    for argv in (["-m", "mailslot_mq9", "--once"], ["-m", "mailslot", "mq9", "--once"]):
        r = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "serving $mq9.AI.>" in r.stderr


async def test_a_gateway_process_serves_requests(server: NatsServer) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailslot_mq9", env=client_env(server), stderr=asyncio.subprocess.PIPE
    )
    nc = await connect(server)
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert b"serving" in line
        c = Mq9(nc)
        assert await c.create("fromshell") == "fromshell"
        assert await c.send("fromshell", "hi") > 0
    finally:
        await nc.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def test_up_with_mq9_serves_the_local_broker_and_stops_with_it() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailslot",
        "up",
        "--mq9",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    nc = None
    try:
        assert proc.stdout is not None
        buf, state = "", None
        deadline = time.monotonic() + 60
        while state is None and time.monotonic() < deadline:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "mailslot up exited"
            buf += line.decode()
            with contextlib.suppress(ValueError):
                state = json.loads(buf)
        assert state is not None
        creds = Credentials.read(state["credentials_path"])
        nc = await nats.connect(state["url"], user=creds.user, password=creds.password)
        c = Mq9(nc)
        for _ in range(100):  # the gateway starts after the broker
            try:
                assert await c.create("local") == "local"
                break
            except NoRespondersError:
                await asyncio.sleep(0.2)
        else:
            raise AssertionError("no mq9 gateway answered")
    finally:
        if nc is not None:
            await nc.close()
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)


def _mailslot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailslot", *args], capture_output=True, text=True, timeout=120
    )


async def test_up_mq9_detached_serves_until_down() -> None:
    """``up --mq9 --detach`` returns with the gateway serving; ``down`` stops it with the broker."""
    r = _mailslot("up", "--mq9", "--detach", "--json")
    assert r.returncode == 0, r.stderr
    state = json.loads(r.stdout)
    home = Path(os.environ["MAILSLOT_HOME"])
    pid = int((home / "mq9.pid").read_text())
    nc = None
    try:
        creds = Credentials.read(state["credentials_path"])
        nc = await nats.connect(state["url"], user=creds.user, password=creds.password)
        assert await Mq9(nc).create("detached") == "detached"  # at once: up waited for it
        again = _mailslot("up", "--mq9", "--detach")  # a second up keeps the one gateway
        assert again.returncode == 0, again.stderr
        assert int((home / "mq9.pid").read_text()) == pid
    finally:
        if nc is not None:
            await nc.close()
        down = _mailslot("down")
    assert down.returncode == 0, down.stderr
    assert not pid_alive(pid, marker="mailslot_mq9")
    assert not (home / "mq9.pid").exists()
    assert b"serving $mq9.AI.>" in (home / "mq9.log").read_bytes()


def test_up_mq9_refuses_cluster() -> None:
    r = _mailslot("up", "--mq9", "--cluster", "3")
    assert r.returncode == 2 and "--mq9" in r.stderr
