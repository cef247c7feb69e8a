"""What one ``open()`` + ``close()`` sends: no ``js.key_value()`` bucket lookup (a STREAM.INFO
each), the record put and the lease create in flight together, the revisions the undo compares
taken from their acks (nothing read back), the two subscriptions confirmed once while the
reads run, and drained at once.
A failed open still removes only what it wrote, at those revisions."""

from __future__ import annotations

import itertools
import time
from typing import Any

import mailslot
import pytest
from mailslot_broker import protocol as p
from nats.js import errors as jserr
from testsupport import squat, unique


class Recorder:
    """(start, end, subject) of every request and flush on a connection, while installed."""

    def __init__(self, nc: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[float, float, str]] = []
        real_request, real_flush = nc.request, nc.flush

        async def request(subject: str, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await real_request(subject, *args, **kwargs)
            finally:
                self.calls.append((t0, time.perf_counter(), subject))

        async def flush(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await real_flush(*args, **kwargs)
            finally:
                self.calls.append((t0, time.perf_counter(), "FLUSH"))

        monkeypatch.setattr(nc, "request", request)
        monkeypatch.setattr(nc, "flush", flush)

    def subjects(self) -> list[str]:
        return [s for _, _, s in self.calls]

    def overlapping(self, what: str) -> bool:
        """Whether two calls to ``what`` were in flight at the same time."""
        spans = sorted((a, b) for a, b, s in self.calls if s == what)
        return any(a2 < b1 for (_, b1), (a2, _) in itertools.pairwise(spans))


async def _seq(ms: mailslot.Mailslot, bucket: str, address: str) -> int:
    raw = await ms.js.get_msg(p.kv_stream(bucket), subject=p.kv_subject(bucket, address), direct=True)
    return int(raw.seq or 0)


async def test_open_writes_without_lookups_and_reads_nothing_back(
    ms: mailslot.Mailslot, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = unique("rt-open")
    rec = Recorder(ms._link.nc, monkeypatch)
    mb = await ms.open(address, ttl=30)
    monkeypatch.undo()
    try:
        subjects = rec.subjects()
        assert not [s for s in subjects if s.startswith("$JS.API.STREAM.INFO.KV_")], subjects
        record_get = f"$JS.API.DIRECT.GET.{p.kv_stream(p.MAILBOXES_BUCKET)}."
        lease_get = f"$JS.API.DIRECT.GET.{p.kv_stream(p.AGENTS_BUCKET)}."
        # Read once each, before anything is written; never read back.
        assert sum(s.startswith(record_get) for s in subjects) == 1, subjects
        assert sum(s.startswith(lease_get) for s in subjects) == 1, subjects
        put = p.kv_subject(p.MAILBOXES_BUCKET, address)
        create = p.kv_subject(p.AGENTS_BUCKET, address)
        spans = {s: (a, b) for a, b, s in rec.calls if s in (put, create)}
        assert set(spans) == {put, create}, subjects
        assert spans[put][0] < spans[create][1] and spans[create][0] < spans[put][1], spans  # together
        # The subscriptions are confirmed once for both (the guard's two flushes), and the
        # reads go out behind the SUBs while that runs.
        flushes = [(a, b) for a, b, s in rec.calls if s == "FLUSH"]
        assert len(flushes) == 2, rec.calls
        reads = [(a, b) for a, b, s in rec.calls if s.startswith((record_get, lease_get))]
        assert min(a for a, _ in reads) < flushes[-1][1], rec.calls
        # The revisions from the acks are the entries on the server.
        assert mb._lease is not None
        assert mb._lease.record_revision == await _seq(ms, p.MAILBOXES_BUCKET, address)
        assert mb._lease.revision == await _seq(ms, p.AGENTS_BUCKET, address)
    finally:
        rec = Recorder(ms._link.nc, monkeypatch)
        await mb.close()
        monkeypatch.undo()
    assert [s for s in rec.subjects() if s == "FLUSH"], rec.calls  # the drains
    assert rec.overlapping("FLUSH"), rec.calls  # ... both at once
    await mb.destroy()


async def test_a_failed_open_leaves_a_record_rewritten_after_its_write(
    ms: mailslot.Mailslot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The open's undo compares the record's revision from its put ack: a record another
    opener wrote after it (here: between the writes and the refused consumer) stays."""
    address = unique("rt-undo")
    await squat(ms, address)  # the low consumer is refused after record and lease were written
    theirs = b'{"theirs": true}'
    real = mailslot.Mailbox._add_consumers

    async def rewritten_first(self: mailslot.Mailbox, *args: Any, **kwargs: Any) -> None:
        kv = await ms.js.key_value(p.MAILBOXES_BUCKET)
        await kv.put(address, theirs)
        await real(self, *args, **kwargs)

    monkeypatch.setattr(mailslot.Mailbox, "_add_consumers", rewritten_first)
    try:
        with pytest.raises(mailslot.BrokerFailure):
            await ms.open(address, ttl=30)
    finally:
        monkeypatch.undo()
        await ms.js.delete_consumer(p.MAIL_STREAM, f"squat-{address}")
    entry = await (await ms.js.key_value(p.MAILBOXES_BUCKET)).get(address)
    assert entry.value == theirs
    # ... while the lease, which nobody rewrote, is gone (its purge marker).
    with pytest.raises(jserr.KeyNotFoundError):
        await (await ms.js.key_value(p.AGENTS_BUCKET)).get(address)


async def test_a_failed_open_leaves_a_lease_another_opener_created_after_its_look(
    ms: mailslot.Mailslot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another opener creates the lease between this open's look and its create (so the
    create is refused), and this open's record write fails: the undo must not purge the
    other opener's live lease, which this open never wrote."""
    from mailslot import _mailbox_undo
    from mailslot.lease import Lease

    address = unique("rt-race")
    real_read = _mailbox_undo.Before.read

    async def look_then_raced(js: Any, addr: str) -> Any:
        before = await real_read(js, addr)
        kv = await ms.js.key_value(p.AGENTS_BUCKET)
        await kv.create(addr, b'{"theirs": true}')  # the other opener, just after our look
        return before

    async def record_fails(self: Lease) -> None:
        raise mailslot.BrokerFailure("record write failed (test)")

    monkeypatch.setattr(_mailbox_undo.Before, "read", look_then_raced)
    monkeypatch.setattr(Lease, "_write_record", record_fails)
    try:
        with pytest.raises(mailslot.BrokerFailure, match="record write failed"):
            await ms.open(address, ttl=30)
    finally:
        monkeypatch.undo()
    entry = await (await ms.js.key_value(p.AGENTS_BUCKET)).get(address)
    assert entry.value == b'{"theirs": true}'
