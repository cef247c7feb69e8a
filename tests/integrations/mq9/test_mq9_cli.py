"""``mailslot-mq9`` and ``mailslot mq9`` as processes: a gateway started from the shell serves
an mq9 request, and ``--once`` checks a setup."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from mailslot_broker import NatsServer
from mq9_support import Mq9, connect
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
