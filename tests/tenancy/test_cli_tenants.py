"""``mailslot tenant add|list|remove`` end to end against the detached local broker: the
broker reloads (same pid, other tenants stay connected), quotas apply, tenants persist."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker import stop_local_broker
from nats.js.api import StreamConfig
from testsupport import mailslot_cli


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return mailslot_cli(*args, check=check)  # MAILSLOT_HOME from the isolated fixture


@pytest.fixture
def local_broker(_isolated_home):
    state = json.loads(cli("up", "--detach", "--json").stdout)
    try:
        yield state
    finally:
        stop_local_broker(_isolated_home)


async def test_tenant_add_list_remove_reloads_without_restart(local_broker, _isolated_home):
    pid = local_broker["pid"]
    default = await mailslot.connect()  # the default tenant, connected across the reloads
    try:
        added = json.loads(
            cli("tenant", "add", "ACME", "--max-streams", "6", "--max-file", "64M", "--json").stdout
        )
        creds = added["credentials"]
        assert added["tenant"] == "ACME"
        assert os.stat(creds).st_mode & 0o777 == 0o600
        assert (_isolated_home / "tenants.json").stat().st_mode & 0o777 == 0o600
        assert json.loads(cli("status", "--json").stdout)["pid"] == pid

        listed = {t["tenant"]: t for t in json.loads(cli("tenant", "list", "--json").stdout)}
        assert set(listed) == {"MAILSLOT", "ACME"}
        assert listed["ACME"]["limits"]["max_streams"] == 6
        assert listed["ACME"]["limits"]["max_file"] == 64 * 1024**2

        async with mailslot.connect(local_broker["url"], credentials=creds, name="acme") as acme:
            assert acme.tenant == "ACME"
            await acme.send("worker", "hello acme")
            assert len(await acme.inspect("worker").peek()) == 1
            assert len(await default.inspect("worker").peek()) == 0
            # The quota holds: Mailslot's six streams fit, a seventh does not.
            with pytest.raises(Exception, match=r"(?i)maximum number of streams"):
                await acme.js.add_stream(StreamConfig(name="EXTRA", subjects=["extra.>"]))
            assert (await acme.js.account_info()).limits.max_streams == 6
            # Claims need a seventh (created on first use): refused clearly, nothing half-made.
            with pytest.raises(mailslot.ProvisioningFailed, match=r"could not be created.*(?i:maximum)"):
                await acme.claims.claim(["src/app.py"], ttl=30)
            assert len(await acme.js.streams_info()) == 6

        assert cli("tenant", "add", "ACME", check=False).returncode == 1  # exists
        assert cli("tenant", "add", "SYS", check=False).returncode == 1  # reserved
        assert cli("tenant", "add", "bad name", check=False).returncode == 1

        cli("tenant", "remove", "ACME")
        assert not Path(creds).exists()  # noqa: ASYNC240
        assert {t["tenant"] for t in json.loads(cli("tenant", "list", "--json").stdout)} == {"MAILSLOT"}
        with pytest.raises(mailslot.AuthenticationFailed):
            await mailslot.connect(local_broker["url"], user=added["user"], password="x", timeout=3)
        assert cli("tenant", "remove", "MAILSLOT", check=False).returncode == 1

        # Same broker process throughout, and the default tenant never had to reconnect.
        assert json.loads(cli("status", "--json").stdout)["pid"] == pid
        assert default.nc.stats["reconnects"] == 0
        await default.send("still", "connected")
    finally:
        await default.close()


async def test_tenants_survive_a_broker_restart(local_broker, _isolated_home):
    added = json.loads(cli("tenant", "add", "KEEP", "--json").stdout)
    async with mailslot.connect(local_broker["url"], credentials=added["credentials"]) as ms:
        await ms.send("box", "kept")
    cli("down")
    state = json.loads(cli("up", "--detach", "--json").stdout)
    assert state["pid"] != local_broker["pid"]
    async with mailslot.connect(state["url"], credentials=added["credentials"]) as ms:
        assert ms.tenant == "KEEP"
        assert [m.text() for m in await ms.inspect("box").peek()] == ["kept"]
        assert (await ms.js.stream_info(p.MAIL_STREAM)).state.messages == 1
    async with mailslot.connect() as default:  # the default tenant's credentials.json still works
        assert await default.inspect("box").peek() == []
