"""CLI fixtures: ``mailslot`` run as a child process against the test's real nats-server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from mailslot_broker import NatsServer
from testsupport import client_env


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Awaitable[Result]]


async def run_cli(env: dict[str, str], *args: str, code: int | None = 0, stdin: str | None = None) -> Result:
    """``python -m mailslot args`` (stdout and stderr are pipes, not a terminal); with
    ``code`` its exit code is checked."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailslot",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else b""), 60)
    res = Result(proc.returncode or 0, out.decode(), err.decode())
    if code is not None:
        assert res.returncode == code, f"exit {res.returncode}, wanted {code}: {res.stderr}{res.stdout}"
    return res


@pytest.fixture
def cli_env(server: NatsServer) -> dict[str, str]:
    return client_env(server)


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Cli:
    """The CLI pointed at the test's own server (MAILSLOT_URL / MAILSLOT_CREDENTIALS)."""

    async def run(*args: str, code: int | None = 0, stdin: str | None = None) -> Result:
        return await run_cli(cli_env, *args, code=code, stdin=stdin)

    return run
