"""reclaim_mailbox (what Mailbox.destroy runs) reads the lease with a direct get and writes its
purge marker itself: no ``js.key_value()`` bucket lookup (a STREAM.INFO each) on the way, and
it still removes mail, lease and record, with the mail in dead letters."""

from __future__ import annotations

from typing import Any

import pytest
from mailslot_broker import protocol as p
from mailslot_broker import provision, reclaim_mailbox
from mailslot_broker.reclaim import lease_alive
from nats.aio.client import Client
from nats.js import errors as jserr


async def test_reclaim_of_a_live_mailbox_makes_no_bucket_lookup(nc: Client, monkeypatch: Any) -> None:
    js = nc.jetstream()
    await provision(js)
    agents = await js.key_value(p.AGENTS_BUCKET)
    mailboxes = await js.key_value(p.MAILBOXES_BUCKET)
    await agents.put("rt", b'{"address": "rt"}')
    await mailboxes.put("rt", b"{}")
    await js.publish(p.mail_subject(p.Priority.NORMAL, "rt"), b"a", headers={p.Header.MSG_ID: "rt-a"})
    await js.publish(
        p.mail_subject(p.Priority.NORMAL, p.reply_address("rt")), b"b", headers={p.Header.MSG_ID: "rt-b"}
    )
    assert await lease_alive(js, "rt") is True

    subjects: list[str] = []
    real = nc.request

    async def recording(subject: str, *args: Any, **kwargs: Any) -> Any:
        subjects.append(subject)
        return await real(subject, *args, **kwargs)

    monkeypatch.setattr(nc, "request", recording)
    report = await reclaim_mailbox(js, "rt")
    monkeypatch.undo()

    assert not [s for s in subjects if s.startswith("$JS.API.STREAM.INFO")], subjects
    assert report.messages_dead_lettered == 2
    assert (await js.stream_info(p.MAIL_STREAM)).state.messages == 0
    assert await lease_alive(js, "rt") is False  # the purge marker, not the lease
    with pytest.raises(jserr.KeyNotFoundError):
        await agents.get("rt")
    with pytest.raises(jserr.KeyNotFoundError):
        await mailboxes.get("rt")


async def test_lease_alive_is_false_without_a_lease(nc: Client) -> None:
    js = nc.jetstream()
    await provision(js)
    assert await lease_alive(js, "nobody") is False
