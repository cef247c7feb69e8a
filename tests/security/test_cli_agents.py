"""``mailslot agent issue|list|revoke`` and ``local_agents.issue_agent`` against the detached local
broker: one call issues a working credential, the file sits next to the tenant's, revoking
disconnects and refuses the agent, and ``connect()`` with no arguments is unchanged."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess

import mailslot
import pytest
from mailslot_broker import stop_local_broker
from mailslot_broker.local import ensure_local_broker
from mailslot_broker.local_agents import issue_agent
from testsupport import mailslot_cli


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return mailslot_cli(*args, check=check)


@pytest.fixture
def local_broker(_isolated_home):
    """The detached local broker (with its sidecar), as the first connect() starts it."""
    try:
        yield ensure_local_broker(_isolated_home).model_dump()
    finally:
        stop_local_broker(_isolated_home)


async def test_issue_list_revoke_on_the_local_broker(local_broker, _isolated_home, tmp_path):
    pid = local_broker["pid"]
    issued = json.loads(cli("agent", "issue", "coder", "--can-send", "planner", "--json").stdout)
    path = issued["credentials"]
    assert path == str(_isolated_home / "credentials.agents" / "coder.json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert issued["can_send"] == ["planner"] and issued["public_key"].startswith("U")
    listed = json.loads(cli("agent", "list", "--json").stdout)
    assert [(a["address"], a["tenant"]) for a in listed] == [("coder", "MAILSLOT")]
    assert "password" not in json.dumps(listed) and "seed" not in json.dumps(listed)
    assert '"seed": "S' not in (_isolated_home / "tenants.json").read_text()
    kept = tmp_path / "kept.json"  # revoking deletes the file: keep a copy to try it after
    shutil.copyfile(path, kept)

    async with mailslot.connect() as ops:  # zero config: the tenant credential, as before
        ops_box = await ops.open("planner", ttl=30)
        async with mailslot.connect(local_broker["url"], credentials=path) as coder:
            assert coder.name == "coder"
            await coder.send("planner", "done")
            with pytest.raises(mailslot.PermissionDenied):
                await coder.send("ops", "not in my policy")
            with pytest.raises(mailslot.PermissionDenied):
                await coder.inspect("planner").peek()
            m = await ops_box.receive(timeout=5)
            assert (m.sender, m.sender_verified) == ("coder", True)
            await m.ack()
            cli("agent", "revoke", "coder")
            for _ in range(500):
                if not coder.connected:
                    break
                await asyncio.sleep(0.02)
            assert not coder.connected
        assert ops.connected and ops.reconnects == 0
        await ops_box.close()
    assert json.loads(cli("status", "--json").stdout)["pid"] == pid  # reloaded, not restarted
    with pytest.raises(mailslot.AuthenticationFailed, match="refused the credentials"):
        await mailslot.connect(local_broker["url"], credentials=kept)
    assert path not in {str(p) for p in (_isolated_home / "credentials.agents").iterdir()}
    assert json.loads(cli("agent", "list", "--json").stdout) == []
    assert cli("agent", "revoke", "coder", check=False).returncode == 1


async def test_issue_agent_is_one_call_and_starts_the_broker(_isolated_home):
    try:
        record, path = await asyncio.to_thread(issue_agent, "helper", topics=["helper.>"])
        async with mailslot.connect(credentials=path) as helper:  # the local broker's URL
            assert helper.name == "helper"
            await helper.publish("helper.up", "1")
            with pytest.raises(mailslot.PermissionDenied):
                await helper.publish("other.up", "1", durable=True)
        assert record.topics == ["helper.>"]
    finally:
        stop_local_broker(_isolated_home)
