"""Restricted credentials: an operation on a denied subject raises ``PermissionDenied`` at
once instead of timing out.

The server reports a denied PUB/SUB asynchronously (``-ERR 'Permissions Violation ...'``);
the SDK's guard turns that into a prompt failure of the operation that caused it. Each case
gets a fresh server whose tenant denies exactly the subjects that operation needs.
"""

from __future__ import annotations

import asyncio
import time

import mailslot
import pytest
from testsupport import restricted_client

PROMPT = 3.0  # seconds; every SDK wait involved is >= 5 s, so a timeout cannot pass


async def _send(ms):
    await ms.send("vault", "x")


async def _durable_publish(ms):
    await ms.publish("secret.plans", "x", durable=True)


async def _ephemeral_publish(ms):
    # Core NATS publish is fire-and-forget: the first one is dropped by the server, and
    # from then on the client refuses the subject at once.
    # The server's -ERR may trail the PONG of a flush, so keep publishing (as a producer
    # would) until the refusal is known; the PROMPT bound still applies.
    for _ in range(100):
        await ms.publish("secret.plans", "x")
        await ms.nc.flush()
        await asyncio.sleep(0.02)


async def _subscribe(ms):
    await ms.subscribe("secret.>")


async def _open(ms):
    await ms.open("vault", ttl=30)


async def _peek(ms):
    await ms.inspect("vault").peek()


async def _agents(ms):
    await ms.agents()


async def _sys_request(ms):
    await ms.nc.request("$SYS.REQ.SERVER.PING", b"", timeout=5)


async def _sys_subscribe(ms):
    await ms.nc.subscribe("$SYS.>")


CASES = {
    "send": (_send, {"publish_deny": ["mbox.*.vault"]}),
    "durable-publish": (_durable_publish, {"publish_deny": ["ptopic.secret.>"]}),
    "ephemeral-publish": (_ephemeral_publish, {"publish_deny": ["topic.secret.>"]}),
    "subscribe": (_subscribe, {"subscribe_deny": ["topic.secret.>"]}),
    "open": (_open, {"subscribe_deny": ["bell.*.vault"]}),
    "peek": (
        _peek,
        {"publish_deny": ["$JS.API.DIRECT.GET.MAILSLOT_MAIL", "$JS.API.DIRECT.GET.MAILSLOT_MAIL.>"]},
    ),
    "agents": (
        _agents,
        {
            "publish_deny": [
                "$JS.API.DIRECT.GET.KV_MAILSLOT_AGENTS",
                "$JS.API.DIRECT.GET.KV_MAILSLOT_AGENTS.>",
            ]
        },
    ),
    "sys-request": (_sys_request, {}),
    "sys-subscribe": (_sys_subscribe, {}),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_denied_operation_raises_permission_denied(case, tmp_path):
    op, extra = CASES[case]
    denied = {
        "publish_deny": extra.get("publish_deny", []),
        "subscribe_deny": extra.get("subscribe_deny", []),
    }
    async with restricted_client(tmp_path, "LIMITED", **denied) as ms:
        started = time.monotonic()
        with pytest.raises(mailslot.PermissionDenied):
            await op(ms)
        assert time.monotonic() - started < PROMPT
        # The connection stays usable for what is allowed.
        await ms.send("allowed", "ok")


async def test_default_permissions_allow_the_whole_mailslot_api(tenants_server, tmp_path):
    """Sanity for the default set: a tenant user can do everything Mailslot offers."""
    from .conftest import connect_as

    ms = await connect_as(tenants_server, "BETA", tmp_path, name="b")
    try:
        mb = await ms.open("me", ttl=30)
        sub = await ms.subscribe("t.>", replay="all")
        await ms.publish("t.x", 1, durable=True)
        await ms.send("me", "hi", priority="critical")
        assert len(await ms.inspect("me").peek()) == 1
        m = await mb.receive(timeout=5)
        await m.ack()
        assert (await sub.next(timeout=5)).json() == 1
        assert [c.address for c in await ms.agents()] == ["me"]
        await sub.close()
        await mb.destroy()
    finally:
        await ms.close()


async def test_a_send_to_a_subject_just_refused_is_refused_locally(tmp_path):
    """The guard remembers a refused publish subject for a while; a send's fast path
    (natscompat.jetstream_publish) asks it first, as the connection's publish does."""
    async with restricted_client(tmp_path, "LIMITED", publish_deny=["mbox.*.vault"]) as ms:
        with pytest.raises(mailslot.PermissionDenied):
            await ms.send("vault", "x")
        sent = ms.nc.stats["out_msgs"]
        started = time.monotonic()
        with pytest.raises(mailslot.PermissionDenied):
            await ms.send("vault", "again")
        assert time.monotonic() - started < 0.5
        assert ms.nc.stats["out_msgs"] == sent  # not sent to the server again
        await ms.send("allowed", "ok")
