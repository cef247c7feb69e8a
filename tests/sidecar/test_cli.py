"""``mailslot dlq`` and ``mailslot stats`` from a shell, against a real server."""

from __future__ import annotations

import asyncio
import json
import subprocess

from mailslot.cli import app
from mailslot_broker import NatsServer
from testsupport import client_env, wait_for
from typer.testing import CliRunner

from .conftest import leader_of


def cli(server: NatsServer, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in-process (typer's runner, in a worker thread: the CLI runs its own loop)."""
    env = client_env(server)
    res = CliRunner().invoke(
        app, list(args), env={k: env[k] for k in ("MAILSLOT_URL", "MAILSLOT_CREDENTIALS")}
    )
    if res.exception and not isinstance(res.exception, SystemExit):
        raise res.exception
    return subprocess.CompletedProcess(list(args), res.exit_code, res.stdout, "")


async def test_dlq_and_stats_commands(server: NatsServer, ms, make_sidecar) -> None:
    sc = await leader_of(await make_sidecar())
    mb = await ms.open("cli-box", max_deliver=5, ack_wait=5)
    r = await ms.send("cli-box", {"n": 1}, priority="urgent")
    await ms.send("cli-box", "waiting")
    m = await mb.receive(timeout=5)
    await ms.dead_letters.term(m, reason="nope")
    await wait_for(lambda: ms.dead_letters.count(), timeout=10)

    out = await asyncio.to_thread(cli, server, "dlq", "list", "--json")
    assert out.returncode == 0, out.stderr
    (item,) = json.loads(out.stdout)
    assert (item["id"], item["address"], item["priority"], item["reason"]) == (
        r.id,
        "cli-box",
        "urgent",
        "nope",
    )
    out = await asyncio.to_thread(cli, server, "dlq", "show", r.id, "--json")
    assert json.loads(out.stdout)["payload"] == {"n": 1}
    out = await asyncio.to_thread(cli, server, "stats", "--once", "--json", "--metrics-url", sc.metrics_url)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["dead_letters"] == 1 and stats["waiting"] == 1
    assert stats["depth"]["cli-box"]["normal"] == 1
    assert stats["sidecar"]["sidecar_leader"] == 1
    out = await asyncio.to_thread(cli, server, "stats", "--once")
    assert out.returncode == 0 and "cli-box" in out.stdout, out.stderr
    out = await asyncio.to_thread(cli, server, "dlq", "requeue", str(item["seq"]), "--json")
    assert json.loads(out.stdout)["id"] == r.id
    got = await mb.receive(timeout=5)
    assert got.id == r.id and got.priority.label == "urgent"
    await got.term(reason="again")
    await wait_for(lambda: ms.dead_letters.count(), timeout=10)
    out = await asyncio.to_thread(cli, server, "dlq", "purge", "--json")
    assert json.loads(out.stdout) == {"purged": 1}
    await mb.close()
