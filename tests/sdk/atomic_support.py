"""What the hypothesis properties of ``open`` and ``send`` share: one real nats-server and a
client on an event loop of the module's own (hypothesis runs synchronously), a way to remove
every trace of an address, and strategies for durations valid and invalid."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import mailslot
import pytest
from hypothesis import strategies as st
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from nats.js import errors as jserr

T = TypeVar("T")
#: Unique address numbers across both properties.
address_numbers = itertools.count()


class Env:
    """A server, an event loop of our own and a client on it, for the whole module."""

    def __init__(self, workdir: Path) -> None:
        self.server = NatsServer(workdir / "nats")
        self.server.start()
        self.loop = asyncio.new_event_loop()
        c = self.server.credentials
        self.ms: mailslot.Mailslot = self.run(
            mailslot.connect(self.server.url, user=c.user, password=c.password, name="prop")
        )

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        try:
            self.run(self.ms.close())
            self.run(self.loop.shutdown_asyncgens())
            self.loop.close()
        finally:
            self.server.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(tmp_path_factory.mktemp("atomic"))
    try:
        yield e
    finally:
        e.close()


async def wipe(ms: mailslot.Mailslot, address: str) -> None:
    """Remove every trace of ``address`` (consumers, lease, record, mail)."""
    for prio in p.PRIORITIES:
        with contextlib.suppress(jserr.NotFoundError):
            await ms.js.delete_consumer(p.MAIL_STREAM, p.consumer_name(address, prio))
    for bucket in (p.AGENTS_BUCKET, p.MAILBOXES_BUCKET):
        await ms.js.purge_stream(f"KV_{bucket}", subject=f"$KV.{bucket}.{address}")
    for subject in (p.mail_subject_all_priorities(address), p.schedule_subject_all(address)):
        await ms.js.purge_stream(p.MAIL_STREAM, subject=subject)


# -- strategies ---------------------------------------------------------------------------------

NAN, INF = math.nan, math.inf
#: Values no number-of-seconds argument may take.
NOT_SECONDS = st.sampled_from(
    [NAN, INF, -INF, -1, -0.5, 1e30, -1e30, 10**30, 2**63, 10**400, True, False, "10", b"1", [1], object()]
)


def seconds_in(lo: float, hi: float) -> st.SearchStrategy[Any]:
    """Valid durations in [lo, hi] as floats, ints and timedeltas."""
    as_float = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    return st.one_of(
        as_float,
        st.integers(math.ceil(lo), math.floor(hi)),
        as_float.map(lambda s: timedelta(seconds=s)).filter(lambda d: lo <= d.total_seconds() <= hi),
        st.sampled_from([lo, hi]),
    )


def bad_seconds(lo: float, hi: float) -> st.SearchStrategy[Any]:
    """Never a valid duration in [lo, hi]: just outside it, what the server itself refuses
    (past int64 nanoseconds), and what is not a number of seconds at all."""
    out = [
        lo - 0.001,
        hi + 0.001,
        hi + 1,
        hi * 2,
        p.SERVER_MAX_SECONDS,
        p.SERVER_MAX_SECONDS + 1,
        1e10,
        0,
        -0.0,
    ]
    outside = st.sampled_from([v for v in out if not lo <= v <= hi])
    as_td = st.sampled_from([timedelta(seconds=hi + 1), timedelta(days=-1), timedelta.max])
    return st.one_of(outside, as_td, NOT_SECONDS)
