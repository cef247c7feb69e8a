"""``mailslot inbox --tag/--key/--since``, ``delete-message`` and ``agents --search`` as
subprocesses against a real server."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import mailslot
from cli.conftest import run_cli
from mailslot_broker import NatsServer
from testsupport import client_env


async def _cli(server: NatsServer, *args: str) -> tuple[int, str, str]:
    r = await run_cli(client_env(server), *args, code=None)
    return r.returncode, r.stdout, r.stderr


async def test_inbox_filters_and_delete_message(server: NatsServer, ms: mailslot.Mailslot) -> None:
    await ms.send("box", "a", tags=["x", "y"])
    cut = datetime.now(timezone.utc)
    await asyncio.sleep(0.01)
    b = await ms.send("box", "b", tags=["x"], replace_key="k")
    code, out, _ = await _cli(server, "inbox", "box", "--tag", "x", "--tag", "y", "--json")
    assert code == 0 and [r["payload"] for r in json.loads(out)] == ["a"]
    code, out, _ = await _cli(server, "inbox", "box", "--key", "k", "--json")
    assert [r["seq"] for r in json.loads(out)] == [b.seq]
    code, out, _ = await _cli(server, "inbox", "box", "--since", cut.isoformat(), "--json")
    assert [r["payload"] for r in json.loads(out)] == ["b"]
    code, out, _ = await _cli(server, "inbox", "box", "--since", str(cut.timestamp() + 3600), "--json")
    assert json.loads(out) == []
    code, _, err = await _cli(server, "inbox", "box", "--since", "someday")
    assert code == 2 and "--since" in err
    code, _, err = await _cli(server, "inbox", "box", "--tag", "x", "--receive")
    assert code == 2
    code, _, err = await _cli(server, "inbox", "box", "--tag", "has space")
    assert code == 1 and "tag" in err

    code, out, _ = await _cli(server, "delete-message", "box", str(b.seq))
    assert code == 0 and "deleted" in out
    code, _, err = await _cli(server, "delete-message", "box", str(b.seq))
    assert code == 1 and "not found" in err
    assert [m.text() for m in await ms.inspect("box").peek(10)] == ["a"]


async def test_agents_search(server: NatsServer, ms: mailslot.Mailslot) -> None:
    await ms.open("tr", card={"name": "Translator", "description": "French to English"})
    await ms.open("cd", card={"name": "Coder", "skills": ["python"]})
    code, out, _ = await _cli(server, "agents", "--search", "french", "--json")
    assert code == 0 and [c["address"] for c in json.loads(out)] == ["tr"]
    code, out, _ = await _cli(server, "agents", "--search", "", "--limit", "1", "--page", "2", "--json")
    assert [c["address"] for c in json.loads(out)] == ["tr"]
    code, out, _ = await _cli(server, "agents", "--search", "python")
    assert code == 0 and "Coder" in out
    code, _, _ = await _cli(server, "agents", "--search", "x", "--tag", "y")
    assert code == 2
