"""The CLI with the local broker (``mailslot up --detach`` in the test's MAILSLOT_HOME) or with
none: ``status`` exit codes and no stray directories, ``logs``, ``tenant add`` quota checks
and the provisioning error that names the quota."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mailslot
import pytest
from mailslot_broker import stop_local_broker

from .conftest import run_cli


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAILSLOT_URL", "MAILSLOT_CREDENTIALS")}
    env["MAILSLOT_HOME"] = str(home)
    env["COLUMNS"] = "200"
    return env


@pytest.fixture
def local_broker(_isolated_home: Path) -> Iterator[dict[str, str]]:
    env = _env(_isolated_home)
    subprocess.run(
        [sys.executable, "-m", "mailslot", "up", "--detach"], env=env, check=True, capture_output=True
    )
    try:
        yield env
    finally:
        stop_local_broker(_isolated_home)


async def test_read_only_commands_without_a_broker_exit_3_and_create_nothing(tmp_path: Path) -> None:
    home = tmp_path / "no-such-home"
    env = _env(home)
    human, as_json, boxes, dlq, agents = await asyncio.gather(
        run_cli(env, "status", code=3),
        run_cli(env, "status", "--json", code=3),
        run_cli(env, "mailboxes", code=3),
        run_cli(env, "dlq", "list", code=3),
        run_cli(env, "agents", "--json", code=3),
    )
    assert "no local broker running" in human.stdout
    info = json.loads(as_json.stdout)
    assert info["running"] is False and info["home"] == str(home)
    assert boxes.stderr.startswith("error: no local broker running")
    assert "mailslot up" in dlq.stderr and agents.stdout == ""
    logs = await run_cli(env, "logs", code=1)
    assert "no log at" in logs.stderr
    assert not home.exists()


async def test_status_of_an_unreachable_url_exits_3(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env["MAILSLOT_URL"] = "nats://127.0.0.1:1"
    human, as_json = await asyncio.gather(
        run_cli(env, "status", code=3), run_cli(env, "status", "--json", code=3)
    )
    assert "BrokerUnreachable" in human.stderr and "BrokerUnreachable" in as_json.stderr


async def test_status_running_agrees_with_json_and_logs(
    local_broker: dict[str, str], _isolated_home: Path
) -> None:
    env = local_broker
    human, as_json = await asyncio.gather(run_cli(env, "status"), run_cli(env, "status", "--json"))
    info = json.loads(as_json.stdout)
    assert info["running"] is True and info["url"] in human.stdout

    broker = await run_cli(env, "logs", "broker", "-n", "5")
    lines = broker.stdout.splitlines()
    assert 0 < len(lines) <= 5 and any("[INF]" in x for x in lines)
    both = await run_cli(env, "logs")
    assert any(x.startswith("broker| ") for x in both.stdout.splitlines())

    sidecar_log = _isolated_home / "sidecar.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailslot", "logs", "sidecar", "-f", "-n", "0",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await asyncio.sleep(1.5)  # the interpreter starts and reaches the follow loop
        with open(sidecar_log, "a") as fh:  # noqa: ASYNC230
            fh.write("a line written while following\n")
        assert proc.stdout is not None
        seen: list[str] = []  # the sidecar writes too: read until the line shows up
        while "a line written while following\n" not in seen:
            seen.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode())
    finally:
        proc.terminate()
        await proc.communicate()


async def test_stats_prints_once_when_piped(local_broker: dict[str, str]) -> None:
    async with mailslot.connect() as ms:
        await ms.send("piped", "x", priority="urgent")
    res = await run_cli(local_broker, "stats")  # stdout is a pipe: one table, then exit 0
    assert "deepest mailboxes" in res.stdout and "piped" in res.stdout
    data = json.loads((await run_cli(local_broker, "stats", "--json")).stdout)
    assert data["depth"]["piped"]["urgent"] == 1 and data["waiting"] >= 1


async def test_tenant_add_refuses_quotas_that_cannot_work(
    local_broker: dict[str, str], _isolated_home: Path
) -> None:
    env = local_broker
    tiny = await run_cli(env, "tenant", "add", "tiny", "--max-streams", "3", code=1)
    assert "max_streams 3 cannot work" in tiny.stderr and "6 streams" in tiny.stderr
    assert "tiny" not in (_isolated_home / "tenants.json").read_text()
    assert not (await run_cli(env, "tenant", "list", "--json")).stdout.count('"tiny"')

    # Six is enough to connect; the claims bucket (made on first use) then hits the quota,
    # and the error names it.
    added = json.loads((await run_cli(env, "tenant", "add", "six", "--max-streams", "6", "--json")).stdout)
    async with mailslot.connect(credentials=added["credentials"], name="six") as ms:
        with pytest.raises(mailslot.ProvisioningFailed, match=r"stream quota \(max_streams\) is used up"):
            await ms.claims.claim(["src/a.py"], ttl=30)
