"""``mailslot send / inbox / tail / agents`` end to end, as subprocesses against a real server."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

import mailslot
import pytest
from mailslot_broker import NatsServer
from testsupport import client_env, wait_for


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(server: NatsServer):  # type: ignore[no-untyped-def]
    env = client_env(server)
    env["COLUMNS"] = "200"  # rich shortens cells to fit a narrow non-terminal

    async def run(*args: str, ok: bool = True) -> Result:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mailslot",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        res = Result(proc.returncode or 0, out.decode(), err.decode())
        if ok:
            assert res.returncode == 0, res.stderr + res.stdout
        return res

    return run


async def test_send_and_inbox(ms: mailslot.Mailslot, cli) -> None:  # type: ignore[no-untyped-def]
    # independent commands run concurrently: each CLI process pays the interpreter start-up
    sent, _, human, bad = await asyncio.gather(
        cli("send", "coder", "fix it", "--priority", "urgent", "--from", "boss", "--json"),
        cli("send", "coder", '{"issue": 7}', "--payload-json", "--ttl", "600"),
        cli("send", "coder", "later", "--priority", "low", "--delay", "1"),
        cli("send", "no*wild", "x", ok=False),
    )
    r = json.loads(sent.stdout)
    assert r["to"] == "coder" and r["priority"] == "urgent" and r["seq"] > 0
    assert "scheduled" in human.stdout
    assert bad.returncode == 1 and "InvalidAddress: " in bad.stderr

    peek = json.loads((await cli("inbox", "coder", "--json")).stdout)
    peek = [m for m in peek if m["priority"] != "low"]  # the delayed one may have landed already
    assert [(m["priority"], m.get("payload")) for m in peek] == [
        ("urgent", "fix it"),
        ("normal", {"issue": 7}),
    ]
    assert peek[0]["from"] == "boss" and peek[0]["id"] == r["id"]

    # --receive without --ack gives the mail back
    got = json.loads((await cli("inbox", "coder", "--receive", "--limit", "1", "--json")).stdout)
    assert [m["payload"] for m in got] == ["fix it"] and got[0]["acked"] is False
    assert "fix it" in [m.text() for m in await ms.inspect("coder").peek()]
    # the CLI's transient reader left no lease behind: the mailbox is not an agent
    assert await ms.agents() == []

    await mailslot_wait_scheduled(ms, "coder", 3)
    taken = json.loads((await cli("inbox", "coder", "--receive", "--ack", "--limit", "10", "--json")).stdout)
    assert [m["priority"] for m in taken] == ["urgent", "normal", "low"]
    assert await ms.inspect("coder").peek() == []
    assert "no mail" in (await cli("inbox", "coder")).stdout


async def mailslot_wait_scheduled(ms: mailslot.Mailslot, address: str, n: int) -> None:
    async def arrived() -> bool:
        return (await ms.inspect(address).stats()).total >= n

    await wait_for(arrived, timeout=10, interval=0.1)  # else: the scheduled message never arrived


async def test_tail_replay_and_live(ms: mailslot.Mailslot, cli, server: NatsServer) -> None:  # type: ignore[no-untyped-def]
    await ms.publish("ci.build", {"n": 1}, durable=True)
    await ms.publish("ci.test", "t", durable=True)
    await ms.publish("ci.build", {"n": 2}, durable=True)
    since = datetime.now(timezone.utc).isoformat()
    every, last, none, human, bad = await asyncio.gather(
        cli("tail", "ci.>", "--replay", "all", "--count", "3", "--json"),
        cli("tail", "ci.*", "--replay", "last", "--timeout", "1", "--json"),
        cli("tail", "ci.>", "--replay", since, "--timeout", "0.5", "--json"),
        cli("tail", "ci.>", "--replay", "all", "--count", "1"),
        cli("tail", "x", "--replay", "yesterday", ok=False),
    )
    lines = every.stdout.splitlines()
    assert [json.loads(x).get("payload") for x in lines] == [{"n": 1}, "t", {"n": 2}]
    assert all(json.loads(x)["replayed"] for x in lines)
    assert {json.loads(x)["topic"]: json.loads(x)["payload"] for x in last.stdout.splitlines()} == {
        "ci.build": {"n": 2},
        "ci.test": "t",
    }
    assert none.stdout == ""
    assert "ci.build" in human.stdout
    assert bad.returncode == 1 and "replay" in bad.stderr

    # live: start tail, wait until it listens, then publish
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailslot",
        *("tail", "live.>", "--count", "2", "--timeout", "30", "--json"),
        env=client_env(server),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"listening" in line
        await ms.publish("live.a", "one")
        await ms.publish("live.b", "two", durable=True)
        raw, _ = await asyncio.wait_for(proc.communicate(), 30)
        out = raw.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    rows = [json.loads(x) for x in out.splitlines()]
    assert [(r["topic"], r["payload"], r["durable"]) for r in rows] == [
        ("live.a", "one", False),
        ("live.b", "two", True),
    ]


async def test_agents(ms: mailslot.Mailslot, cli) -> None:  # type: ignore[no-untyped-def]
    empty, empty_human = await asyncio.gather(cli("agents", "--json"), cli("agents"))
    assert json.loads(empty.stdout) == [] and "no live agents" in empty_human.stdout
    await ms.open("coder", card={"name": "Coder", "capabilities": ["python"], "tags": ["dev"]})
    await ms.open("writer", card={"name": "Writer", "capabilities": ["prose"], "tags": ["dev"]})
    both, py, human = await asyncio.gather(
        cli("agents", "--tag", "dev", "--json"),
        cli("agents", "--capability", "python", "--json"),
        cli("agents"),
    )
    assert [a["address"] for a in json.loads(both.stdout)] == ["coder", "writer"]
    assert [(a["address"], a["name"]) for a in json.loads(py.stdout)] == [("coder", "Coder")]
    assert "Writer" in human.stdout
