"""Bad audit input gets a typed error before anything is read or changed; the CLI answers
the same questions as the SDK."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import mailslot
import pytest
from mailslot_broker import NatsServer
from testsupport import client_env, mailslot_cli, wait_for


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"sender": "not an address"}, mailslot.InvalidAddress),
        ({"recipient": ""}, mailslot.InvalidAddress),
        ({"since": "yesterday"}, mailslot.InvalidInput),
        ({"since": timedelta(seconds=-1)}, mailslot.InvalidInput),
        ({"message_id": ""}, mailslot.InvalidInput),
        ({"message_id": 42}, mailslot.InvalidInput),
        ({"kinds": ["stored", "read"]}, mailslot.InvalidInput),
        ({"kinds": "stored"}, mailslot.InvalidInput),
    ],
)
async def test_query_input_typed_errors(shared_ms: mailslot.Mailslot, kwargs: dict, error: type) -> None:
    """Checked before the server is asked (the shared server's audit is off)."""
    with pytest.raises(error):
        await shared_ms.audit.query(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"retention": 0}, {"retention": -5}, {"retention": "30d"}, {"bodies": "yes"}]
)
async def test_enable_input_typed_errors(shared_ms: mailslot.Mailslot, kwargs: dict) -> None:
    with pytest.raises(mailslot.InvalidInput):
        await shared_ms.audit.enable(**kwargs)
    assert (await shared_ms.audit.status()).enabled is False


async def test_naive_since_is_utc(ms: mailslot.Mailslot) -> None:
    await ms.audit.enable()
    r = await ms.send("bob", "x", sender="alice")
    await wait_for(lambda: ms.audit.query(since=datetime(2000, 1, 1), message_id=r.id))
    assert await ms.audit.query(since=datetime(2100, 1, 1)) == []


def test_cli_enable_query_disable(server: NatsServer) -> None:
    env = client_env(server)
    assert "audit: off" in mailslot_cli("audit", "status", env=env).stdout
    off = mailslot_cli("audit", "--json", env=env, check=False)
    assert off.returncode != 0 and "audit trail is off" in off.stderr
    on = mailslot_cli("audit", "enable", "--bodies", "--retention", "12h", env=env).stdout
    assert "bodies kept, retention 0.5 d" in on
    sent = json.loads(mailslot_cli("send", "bob", "hello", "--from", "alice", "--json", env=env).stdout)
    mid = sent["id"]
    rows = json.loads(mailslot_cli("audit", "--from", "alice", "--to", "bob", "--json", env=env).stdout)
    assert [(r["kind"], r["message_id"], r["body"]) for r in rows] == [("stored", mid, "hello")]
    assert json.loads(mailslot_cli("audit", "--from", "carol", "--json", env=env).stdout) == []
    table = mailslot_cli("audit", "--message", mid, "--since", "1h", env=env).stdout
    assert mid in table and "1 record(s)" in table
    bad = mailslot_cli("audit", "--since", "last tuesday", env=env, check=False)
    assert bad.returncode != 0 and "--since" in bad.stderr
    assert "audit: off" in mailslot_cli("audit", "disable", env=env).stdout
