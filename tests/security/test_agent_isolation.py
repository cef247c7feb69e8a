"""With agent bob's credential, nothing of agent alice's mailbox is reachable: every case
goes through raw nats-py (the server refuses the subject) and, where the SDK has the
operation, through the SDK (typed ``PermissionDenied``, fast). Bob's own mailbox works."""

from __future__ import annotations

import json
import time

import mailslot
import pytest
from mailslot_broker import protocol as p

PROMPT = 3.0  # seconds; every SDK wait involved is >= 5 s, so a timeout cannot pass
A = "alice"
A_CONSUMER = p.consumer_name(A, p.Priority.NORMAL)
MAIL = p.MAIL_STREAM
_AW_LEASE = p.agent_writes.agent_write_subject(p.AGENTS_BUCKET, A)
_AW_RECORD = p.agent_writes.agent_write_subject(p.MAILBOXES_BUCKET, A)


async def _prepared(principals):
    """Alice has mail waiting, a lease and consumers (she opened once)."""
    tenant = await principals.connect("tenant", name="ops")
    await tenant.send(A, "secret for alice")
    alice = await principals.connect("alice")
    mb = await alice.open(A, ttl=30)
    return tenant, alice, mb


def _req(subject: str, body: object = b""):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda raw: raw.nc.request(subject, data, timeout=1.5)


def _sub(subject: str):
    async def go(raw):
        sub = await raw.nc.subscribe(subject)
        await raw.nc.flush()
        try:
            return await sub.next_msg(timeout=1.0)
        finally:
            await sub.unsubscribe()

    return go


def _pub(subject: str, body: bytes = b"x"):
    async def go(raw):
        await raw.nc.publish(subject, body)
        await raw.nc.flush()

    return go


RAW_CASES = {
    # consume
    "consumer-create": (
        f"$JS.API.CONSUMER.CREATE.{MAIL}.{A_CONSUMER}.mbox.2.{A}",
        _req(f"$JS.API.CONSUMER.CREATE.{MAIL}.{A_CONSUMER}.mbox.2.{A}", {"stream_name": MAIL}),
    ),
    "consumer-create-own-name-their-filter": (
        f"mbox.2.{A}",
        _req(f"$JS.API.CONSUMER.CREATE.{MAIL}.{p.consumer_name('bob', p.Priority.NORMAL)}.mbox.2.{A}", {}),
    ),
    "consumer-create-old-form": (
        f"$JS.API.CONSUMER.DURABLE.CREATE.{MAIL}.x",
        _req(f"$JS.API.CONSUMER.DURABLE.CREATE.{MAIL}.x", {"config": {"filter_subject": f"mbox.2.{A}"}}),
    ),
    "pull": (
        f"$JS.API.CONSUMER.MSG.NEXT.{MAIL}.{A_CONSUMER}",
        _req(f"$JS.API.CONSUMER.MSG.NEXT.{MAIL}.{A_CONSUMER}", {"batch": 1, "no_wait": True}),
    ),
    "ack": (
        f"$JS.ACK.{MAIL}.{A_CONSUMER}.1.1.1.1.0",
        _pub(f"$JS.ACK.{MAIL}.{A_CONSUMER}.1.1.1.1.0", b"+ACK"),
    ),
    "consumer-info": (
        f"$JS.API.CONSUMER.INFO.{MAIL}.{A_CONSUMER}",
        _req(f"$JS.API.CONSUMER.INFO.{MAIL}.{A_CONSUMER}"),
    ),
    "consumer-delete": (
        f"$JS.API.CONSUMER.DELETE.{MAIL}.{A_CONSUMER}",
        _req(f"$JS.API.CONSUMER.DELETE.{MAIL}.{A_CONSUMER}"),
    ),
    # peek
    "direct-get-next": (
        f"$JS.API.DIRECT.GET.{MAIL}",
        _req(f"$JS.API.DIRECT.GET.{MAIL}", {"seq": 1, "next_by_subj": f"mbox.*.{A}"}),
    ),
    "direct-get-last": (
        f"$JS.API.DIRECT.GET.{MAIL}.mbox.2.{A}",
        _req(f"$JS.API.DIRECT.GET.{MAIL}.mbox.2.{A}"),
    ),
    "msg-get": (f"$JS.API.STREAM.MSG.GET.{MAIL}", _req(f"$JS.API.STREAM.MSG.GET.{MAIL}", {"seq": 1})),
    "stream-info": (
        f"$JS.API.STREAM.INFO.{MAIL}",
        _req(f"$JS.API.STREAM.INFO.{MAIL}", {"subjects_filter": ">"}),
    ),
    # purge / delete
    "purge": (
        f"$JS.API.STREAM.PURGE.{MAIL}",
        _req(f"$JS.API.STREAM.PURGE.{MAIL}", {"filter": f"mbox.*.{A}"}),
    ),
    "msg-delete": (
        f"$JS.API.STREAM.MSG.DELETE.{MAIL}",
        _req(f"$JS.API.STREAM.MSG.DELETE.{MAIL}", {"seq": 1}),
    ),
    # the lease and the mailbox record
    "lease-read": (
        f"$JS.API.DIRECT.GET.KV_{p.AGENTS_BUCKET}.$KV.{p.AGENTS_BUCKET}.{A}",
        _req(f"$JS.API.DIRECT.GET.KV_{p.AGENTS_BUCKET}.$KV.{p.AGENTS_BUCKET}.{A}"),
    ),
    "lease-read-by-body": (
        f"$JS.API.DIRECT.GET.KV_{p.AGENTS_BUCKET}",
        _req(f"$JS.API.DIRECT.GET.KV_{p.AGENTS_BUCKET}", {"last_by_subj": f"$KV.{p.AGENTS_BUCKET}.{A}"}),
    ),
    "lease-write": (f"$KV.{p.AGENTS_BUCKET}.{A}", _req(f"$KV.{p.AGENTS_BUCKET}.{A}", b"{}")),
    "record-write": (f"$KV.{p.MAILBOXES_BUCKET}.{A}", _req(f"$KV.{p.MAILBOXES_BUCKET}.{A}", b"{}")),
    # an agent writes its own lease and record through the agent writes stream, not alice's
    "lease-write-through-writes": (_AW_LEASE, _req(_AW_LEASE, b"{}")),
    "record-write-through-writes": (_AW_RECORD, _req(_AW_RECORD, b"{}")),
    "lease-read-in-writes": (
        f"$JS.API.DIRECT.GET.{p.agent_writes.AGENT_WRITES_STREAM}.{_AW_LEASE}",
        _req(f"$JS.API.DIRECT.GET.{p.agent_writes.AGENT_WRITES_STREAM}.{_AW_LEASE}"),
    ),
    # bells, inboxes, dead letters, devices
    "bells": (f"bell.*.{A}", _sub(f"bell.*.{A}")),
    "reply-bells": (f"bell.*.{A}._replies", _sub(f"bell.*.{A}._replies")),
    "all-inboxes": ("_INBOX.>", _sub("_INBOX.>")),
    "dead-letters": (f"dlq.*.{A}", _sub(f"dlq.*.{A}")),
    "device-uplink-as-alice": (f"mbox.dev.{A}.2.bob", _pub(f"mbox.dev.{A}.2.bob")),
    "system": ("$SYS.REQ.SERVER.PING", _req("$SYS.REQ.SERVER.PING")),
    # a schedule fires at its Nats-Schedule-Target, which the server does not check against
    # the publisher's permissions: no schedules for agent credentials at all
    "schedule-to-alice": (
        "msched.bob.x1",
        _req("msched.bob.x1", b"x"),
    ),
}


@pytest.mark.parametrize("case", list(RAW_CASES))
async def test_raw_nats_with_bobs_credential_reaches_nothing_of_alice(principals, case):
    subject, action = RAW_CASES[case]
    tenant, _alice, _mb = await _prepared(principals)
    raw = await principals.raw("bob")
    got = await raw.denied(subject, lambda: action(raw))
    assert got == [], f"{case}: got {got!r}"
    # Alice's mail is still there and hers.
    assert [m.text() for m in await tenant.inspect(A).peek()] == ["secret for alice"]


async def _sdk_open(bob):
    await bob.open(A, ttl=30)


async def _sdk_peek(bob):
    await bob.inspect(A).peek()


async def _sdk_stats(bob):
    await bob.inspect(A).stats()


async def _sdk_watch(bob):
    async with bob.watch_mail(A) as feed:
        await feed.next(timeout=2)


async def _sdk_dead_letters(bob):
    await bob.dead_letters.list(A)


async def _sdk_purge_dead_letters(bob):
    await bob.dead_letters.purge(A)


SDK_CASES = {
    "open": _sdk_open,
    "peek": _sdk_peek,
    "stats": _sdk_stats,
    "watch-mail": _sdk_watch,
    # agents() is no longer denied: cards are public in a tenant, the sidecar lists them
    # (tests/security/test_agent_own_registry.py).
    "dead-letters": _sdk_dead_letters,
    "purge-dead-letters": _sdk_purge_dead_letters,
}


@pytest.mark.parametrize("case", list(SDK_CASES))
async def test_sdk_with_bobs_credential_is_denied_alices_mailbox(principals, case):
    tenant, _alice, _mb = await _prepared(principals)
    bob = await principals.connect("bob")
    started = time.monotonic()
    with pytest.raises(mailslot.PermissionDenied):
        await SDK_CASES[case](bob)
    assert time.monotonic() - started < PROMPT
    assert [m.text() for m in await tenant.inspect(A).peek()] == ["secret for alice"]
    # Bob's connection stays usable for what he may do.
    await bob.send(A, "still allowed")
