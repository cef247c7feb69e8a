"""``open`` is all or nothing and ``send`` stores nothing it refuses: hypothesis properties.

One real nats-server (the project's launcher) and one client serve every example; hypothesis
runs synchronously and each example's coroutine runs on an event loop this module owns.

For ``open`` the arguments mix valid values, edges (each limit and just past it) and bad
ones (inf, nan, negatives, 1e30, huge ints, bools, strings, timedeltas, backoff lists with a
bad step, ``max_deliver`` not above the backoff length), and the address is one of:

- ``fresh``: nothing there;
- ``offline``: an offline mailbox (record with ``offline_since``, mail waiting, no lease and
  no consumers), which a failed open must leave exactly as it was;
- ``squatted``: another consumer already filters the address's ``low`` level, so the server
  refuses the fourth consumer after the record, the lease and three consumers were written;
- ``live``: a replica holds the lease and the consumers, which must survive a failed open;

and some calls are cancelled after a random delay. Either ``open`` succeeds, or it raises a
``MailslotError`` (or the cancellation) and nothing it created is left on the server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import math
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import mailslot
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from nats.js import errors as jserr
from pydantic import BaseModel
from testsupport import squat

T = TypeVar("T")
_names = itertools.count()
EXAMPLES_OPEN = 300
EXAMPLES_SEND = 300


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
    e = Env(tmp_path_factory.mktemp("open-atomic"))
    try:
        yield e
    finally:
        e.close()


# -- what the server holds for one address ------------------------------------------------------


@dataclass(frozen=True)
class State:
    record: bytes | None  # the mailbox record's value (None: none, or a marker)
    lease_live: bool
    consumers: frozenset[p.Priority]
    mail: int  # messages on the address's subjects (mail and scheduled)


async def _kv_value(ms: mailslot.Mailslot, bucket: str, key: str) -> bytes | None:
    try:
        raw = await ms.js.get_msg(f"KV_{bucket}", subject=f"$KV.{bucket}.{key}", direct=True)
    except jserr.NotFoundError:
        return None
    if (raw.headers or {}).get("KV-Operation") or not raw.data:
        return None
    return bytes(raw.data)


async def state(ms: mailslot.Mailslot, address: str) -> State:
    consumers = set()
    for prio in p.PRIORITIES:
        try:
            await ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, prio))
            consumers.add(prio)
        except jserr.NotFoundError:
            pass
    mail = 0
    for subject in (p.mail_subject_all_priorities(address), p.schedule_subject_all(address)):
        info = await ms.js.stream_info(p.MAIL_STREAM, subjects_filter=subject)
        mail += sum((info.state.subjects or {}).values())
    return State(
        record=await _kv_value(ms, p.MAILBOXES_BUCKET, address),
        lease_live=await _kv_value(ms, p.AGENTS_BUCKET, address) is not None,
        consumers=frozenset(consumers),
        mail=mail,
    )


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


# Every argument of open: (valid values, values that are never valid). The valid ones include
# both ends of each range; None means "the default".
OPEN_VALID: dict[str, st.SearchStrategy[Any]] = {
    "ttl": st.one_of(st.none(), seconds_in(p.MIN_LEASE_TTL, p.MAX_LEASE_TTL)),
    "keep": st.one_of(st.none(), seconds_in(0.0, p.MAX_KEEP)),
    "ack_wait": st.one_of(st.none(), seconds_in(p.MIN_ACK_WAIT, p.MAX_ACK_WAIT)),
    "max_deliver": st.one_of(st.just(-1), st.integers(4, 20), st.just(p.MAX_DELIVER_LIMIT)),
    "backoff": st.lists(seconds_in(p.MIN_BACKOFF, p.MAX_ACK_WAIT), max_size=3),
    "prefetch": st.one_of(st.integers(1, 50), st.just(p.MAX_PREFETCH)),
    "heartbeat": st.one_of(st.none(), seconds_in(p.MIN_HEARTBEAT, p.MAX_HEARTBEAT)),
    "card": st.one_of(
        st.none(),
        st.builds(
            dict,
            name=st.text(max_size=20),
            capabilities=st.lists(st.text(max_size=10), max_size=3),
            metadata=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
        ),
        st.builds(mailslot.AgentCard, description=st.text(max_size=30)),
    ),
}
_STEP_BAD = bad_seconds(p.MIN_BACKOFF, p.MAX_ACK_WAIT)
OPEN_BAD: dict[str, st.SearchStrategy[Any]] = {
    "ttl": st.one_of(bad_seconds(p.MIN_LEASE_TTL, p.MAX_LEASE_TTL), st.just(p.MAX_SECONDS)),
    "keep": bad_seconds(0.0, p.MAX_KEEP),
    "ack_wait": bad_seconds(p.MIN_ACK_WAIT, p.MAX_ACK_WAIT),
    "max_deliver": st.sampled_from(
        [0, -2, -(2**63), p.MAX_DELIVER_LIMIT + 1, 2**63, 2**64, True, False, 5.0, "5", NAN, b"5"]
    ),
    "backoff": st.one_of(
        st.lists(st.one_of(seconds_in(p.MIN_BACKOFF, 10.0), _STEP_BAD), min_size=1, max_size=3).filter(
            lambda steps: any(not _ok_step(x) for x in steps)
        ),
        st.tuples(_STEP_BAD),
        st.just([1.0] * (p.MAX_BACKOFF_STEPS + 1)),
        st.sampled_from(["1,2", 5, 1.5, {"a": 1}, b"\x01", True]),
    ),
    "prefetch": st.sampled_from([0, -1, p.MAX_PREFETCH + 1, 2**63, True, 1.5, "1", NAN]),
    "heartbeat": bad_seconds(p.MIN_HEARTBEAT, p.MAX_HEARTBEAT),
    "card": st.sampled_from(
        [
            "planner",
            ["name"],
            5,
            {"name": 5},
            {"capabilities": "x"},
            {"metadata": {"o": object()}},
            {"description": "x" * (p.MAX_CARD_BYTES + 1)},
        ]
    ),
}


COMBO = "max_deliver<=steps"


def _ok_step(x: Any) -> bool:
    if isinstance(x, timedelta):
        x = x.total_seconds()
    return isinstance(x, (int, float)) and not isinstance(x, bool) and p.MIN_BACKOFF <= x <= p.MAX_ACK_WAIT


@st.composite
def open_args(draw: st.DrawFn) -> tuple[dict[str, Any], frozenset[str]]:
    """(arguments, the names of the invalid ones). Half the calls are valid; the rest spoil
    one to three arguments (or pair a valid max_deliver with too many backoff steps)."""
    args = {name: draw(strategy) for name, strategy in OPEN_VALID.items()}
    md, backoff = args["max_deliver"], args["backoff"]
    if md != -1 and md <= len(backoff):
        args["max_deliver"] = len(backoff) + 1
    bad: frozenset[str] = frozenset()
    if draw(st.booleans()):
        bad = frozenset(draw(st.sets(st.sampled_from([*OPEN_BAD, COMBO]), min_size=1, max_size=3)))
        if COMBO in bad:  # both valid on their own, refused together
            bad -= {"max_deliver", "backoff"}
            n = draw(st.integers(1, 4))
            args["backoff"], args["max_deliver"] = [1.0] * n, draw(st.integers(1, n))
        for name in bad - {COMBO}:
            args[name] = draw(OPEN_BAD[name])
    # Leave some valid ones out: the defaults must combine with everything too.
    drop = draw(st.sets(st.sampled_from(sorted(set(args) - bad - {"max_deliver", "backoff"})), max_size=3))
    return {k: v for k, v in args.items() if k not in drop}, bad


# -- the open property --------------------------------------------------------------------------


async def _prepare(ms: mailslot.Mailslot, kind: str, address: str) -> tuple[State, mailslot.Mailbox | None]:
    replica = None
    if kind == "offline":
        record = p.MailboxRecord(
            opened_at=time.time() - 1000,
            keep=3600.0,
            offline_since=time.time() - 500,
            card={"name": "away", "status": "offline", "address": address},
        )
        kv = await ms.js.key_value(p.MAILBOXES_BUCKET)
        await kv.put(address, record.encode())
        await ms.send(address, "waiting 1")
        await ms.send(address, {"waiting": 2}, priority="urgent")
    elif kind == "squatted":
        await squat(ms, address)
    elif kind == "live":
        replica = await ms.open(address, ttl=60)
    return await state(ms, address), replica


async def _open_once(
    ms: mailslot.Mailslot, kind: str, args: dict[str, Any], cancel_after: float | None
) -> tuple[str, BaseException | None]:
    address = f"atomic-{next(_names)}"
    before, replica = await _prepare(ms, kind, address)
    task = asyncio.ensure_future(ms.open(address, **args))
    if cancel_after is not None:
        await asyncio.sleep(cancel_after)
        task.cancel()
    error: BaseException | None = None
    try:
        mb = await task
    except asyncio.CancelledError as exc:
        assert cancel_after is not None, "open was cancelled by nobody"
        error = exc
    except mailslot.MailslotError as exc:
        error = exc
    else:
        assert kind != "squatted", "the server should have refused the low-priority consumer"
        await mb.close()
    try:
        if error is not None:
            after = await state(ms, address)
            if kind == "fresh":
                assert after == State(None, False, frozenset(), 0), (args, error)
            elif kind == "offline":
                assert after == before, (args, error)  # the record is byte for byte the same
            elif kind == "squatted":
                assert after == State(None, False, frozenset(), 0), (args, error)
                await ms.js.consumer_info(p.MAIL_STREAM, f"squat-{address}")  # theirs stays
            else:  # live: the replica keeps its lease, record and consumers
                assert after.lease_live and after.record == before.record, (args, error)
                assert after.consumers == frozenset(p.PRIORITIES), (args, error)
        return kind, error
    finally:
        if replica is not None:
            await replica.close()
        if kind == "squatted":
            await ms.js.delete_consumer(p.MAIL_STREAM, f"squat-{address}")
        await wipe(ms, address)


_outcomes: list[tuple[str, str]] = []


@settings(
    max_examples=EXAMPLES_OPEN,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    kind=st.sampled_from(["fresh", "offline", "squatted", "live"]),
    case=open_args(),
    cancel_after=st.one_of(st.none(), st.floats(0, 0.015)),
)
# Cancellation of every kind of address, whatever the generator favours (open takes ~10 ms).
@example(kind="fresh", case=({}, frozenset()), cancel_after=0.004)
@example(kind="offline", case=({}, frozenset()), cancel_after=0.0)
@example(kind="offline", case=({"keep": 60}, frozenset()), cancel_after=0.004)
@example(kind="live", case=({}, frozenset()), cancel_after=0.0)
@example(kind="live", case=({"ack_wait": 5}, frozenset()), cancel_after=0.004)
@example(kind="squatted", case=({}, frozenset()), cancel_after=None)
@example(kind="fresh", case=({}, frozenset()), cancel_after=None)
@example(kind="offline", case=({"ttl": INF}, frozenset({"ttl"})), cancel_after=None)
@example(kind="live", case=({"max_deliver": 0}, frozenset({"max_deliver"})), cancel_after=None)
def test_open_is_all_or_nothing(
    env: Env, kind: str, case: tuple[dict[str, Any], frozenset[str]], cancel_after: float | None
) -> None:
    args, bad = case
    kind, error = env.run(_open_once(env.ms, kind, args, cancel_after))
    if bad:
        # Refused before the server is asked anything (so a cancellation comes too late),
        # typed, and the message names one of the bad arguments and its range.
        assert isinstance(error, mailslot.InvalidInput), (args, bad, error)
        named = {"max_deliver" if b == COMBO else b for b in bad}
        assert any(name in str(error) for name in named), (bad, str(error))
        outcome = type(error).__name__
    elif error is None:
        assert kind != "squatted", args
        outcome = "opened"
    elif isinstance(error, asyncio.CancelledError):
        outcome = "cancelled"
    else:
        # Valid arguments fail only where the server refuses the squatted level.
        assert kind == "squatted" and isinstance(error, mailslot.BrokerFailure), (kind, args, error)
        outcome = type(error).__name__
    if not bad and cancel_after is None:
        assert (error is None) == (kind != "squatted"), (kind, args, error)
    _outcomes.append((kind, outcome))


def test_open_property_covered_every_path() -> None:
    """The property above really went through each branch (not only bad input)."""
    if not _outcomes:
        pytest.skip("the property did not run in this session")
    kinds = {k for k, _ in _outcomes}
    outcomes = {o for _, o in _outcomes}
    print(collections.Counter(_outcomes))
    assert {"fresh", "offline", "squatted", "live"} <= kinds
    assert {"opened", "cancelled", "BrokerFailure", "InvalidTTL", "InvalidInput"} <= outcomes, outcomes
    # ... and cancellations hit every kind of address, not only the fresh ones
    assert {k for k, o in _outcomes if o == "cancelled"} >= {"fresh", "offline", "live"}


# -- the send property --------------------------------------------------------------------------


class Order(BaseModel):
    item: str
    qty: int


PAYLOAD_VALID = st.one_of(
    st.text(max_size=50).filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)),
    st.binary(max_size=50),
    st.dictionaries(st.text(max_size=5), st.integers() | st.booleans() | st.none(), max_size=4),
    st.builds(Order, item=st.text(max_size=10), qty=st.integers(-(2**31), 2**31)),
)
PAYLOAD_BAD = st.sampled_from(
    [object(), {"x": NAN}, [INF], "\ud800 lone surrogate", b"x" * (2 * 1024 * 1024), {1, object()}]
)
SEND_VALID: dict[str, st.SearchStrategy[Any]] = {
    "payload": PAYLOAD_VALID,
    "ttl": st.one_of(st.none(), seconds_in(5.0, p.MAX_SECONDS)),
    "delay": st.one_of(st.none(), st.none(), seconds_in(5.0, p.MAX_SECONDS)),
    "priority": st.sampled_from(
        ["critical", "urgent", "normal", "low", "LOW", 0, 1, 2, 3, p.Priority.URGENT, "2"]
    ),
    "headers": st.one_of(
        st.none(),
        st.dictionaries(
            st.from_regex(r"X-[A-Za-z0-9]{1,8}", fullmatch=True),
            st.from_regex(r"[!-~]([ -~]{0,8}[!-~])?", fullmatch=True),
            max_size=3,
        ),
    ),
}
SEND_BAD: dict[str, st.SearchStrategy[Any]] = {
    "payload": PAYLOAD_BAD,
    "ttl": st.one_of(bad_seconds(p.MIN_TTL_SECONDS, p.MAX_SECONDS), st.just(0.5)),
    "delay": st.one_of(bad_seconds(p.MIN_TTL_SECONDS, p.MAX_SECONDS), st.just(0.5)),
    "priority": st.sampled_from(["asap", "", 4, -1, True, 1.0, None, b"low"]),
    "headers": st.sampled_from(
        [
            {"Nats-Msg-Id": "x"},
            {"mailslot-from": "evil"},
            {"a b": "c"},
            {"a:b": "c"},
            {"": "c"},
            {"X-A": "line\nbreak"},
            {"X-A": "nul\0"},
            {"X-A": " padded"},
            {"X-A": 5},
            {"X-A": "\udcff"},
            {5: "x"},
            [("X-A", "b")],
            "X-A: b",
        ]
    ),
    "correlation_id": st.sampled_from(["two\nlines", 7, "\ud800"]),
    "thread_id": st.sampled_from([7, "cr\r"]),
    "idempotency_key": st.sampled_from([42, b"k", ""]),
    "reply_to": st.sampled_from(["a b", "x.>", ""]),
    "sender": st.sampled_from(["\ud800", " lead", 5]),
    "to": st.sampled_from(["a b", "x.*", "", "x" * 200, None, 5]),
}
#: What a message about each bad argument names.
SEND_NAMES = {
    "payload": ("payload", "bytes"),
    "to": ("address",),
    "reply_to": ("address",),
    "headers": ("header",),
}


@st.composite
def send_args(draw: st.DrawFn) -> tuple[dict[str, Any], frozenset[str]]:
    """(arguments, the names of the invalid ones): valid, or one to three spoiled."""
    kw = {name: draw(strategy) for name, strategy in SEND_VALID.items()}
    bad: frozenset[str] = frozenset()
    if draw(st.integers(0, 2)):
        bad = frozenset(draw(st.sets(st.sampled_from(sorted(SEND_BAD)), min_size=1, max_size=3)))
        for name in bad:
            kw[name] = draw(SEND_BAD[name])
    return kw, bad


async def _stored(ms: mailslot.Mailslot) -> int:
    return int((await ms.js.stream_info(p.MAIL_STREAM)).state.messages)


async def _send_once(ms: mailslot.Mailslot, kw: dict[str, Any], bad: frozenset[str], many: bool) -> str:
    address = f"sendprop-{next(_names)}"
    kw = {"to": address, **kw}
    stored = await _stored(ms)
    try:
        if many:
            await ms.send_many([{"to": address, "payload": "first, valid"}, kw])
        else:
            await ms.send(**kw)
    except mailslot.MailslotError as exc:
        assert bad, (kw, exc)
        assert isinstance(exc, mailslot.InvalidInput), (kw, exc)
        names = [w for b in bad for w in SEND_NAMES.get(b, (b,))]
        assert any(w in str(exc) for w in names), (bad, str(exc))
        assert await _stored(ms) == stored, kw  # nothing, not even the valid first item
        return type(exc).__name__
    else:
        assert not bad, (kw, bad)
        assert await _stored(ms) == stored + (2 if many else 1), kw
        return "sent"
    finally:
        await wipe(ms, address)


_send_outcomes: list[str] = []


@settings(max_examples=EXAMPLES_SEND, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=send_args(), many=st.booleans())
# One of each kind of refusal, whatever the generator favours.
@example(case=({"payload": "x", "delay": 5, "ttl": 10}, frozenset()), many=True)
@example(case=({"payload": {"x": NAN}}, frozenset({"payload"})), many=False)
@example(case=({"payload": "\ud800"}, frozenset({"payload"})), many=True)
@example(case=({"payload": b"x" * (2 * 1024 * 1024)}, frozenset({"payload"})), many=False)
@example(case=({"payload": "x", "headers": {"X-A": " padded"}}, frozenset({"headers"})), many=False)
@example(case=({"payload": "x", "priority": "asap"}, frozenset({"priority"})), many=True)
@example(case=({"payload": "x", "ttl": INF}, frozenset({"ttl"})), many=True)
@example(case=({"payload": "x", "to": "a b"}, frozenset({"to"})), many=False)
@example(case=({"payload": "x", "idempotency_key": 42}, frozenset({"idempotency_key"})), many=False)
def test_send_stores_nothing_it_refuses(
    env: Env, case: tuple[dict[str, Any], frozenset[str]], many: bool
) -> None:
    kw, bad = case
    _send_outcomes.append(env.run(_send_once(env.ms, kw, bad, many)))


def test_send_property_covered_every_path() -> None:
    if not _send_outcomes:
        pytest.skip("the property did not run in this session")
    print(collections.Counter(_send_outcomes))
    assert {
        "sent",
        "InvalidTTL",
        "UnknownPriority",
        "InvalidHeader",
        "InvalidPayload",
        "PayloadTooLarge",
        "InvalidAddress",
        "InvalidInput",
    } <= set(_send_outcomes), set(_send_outcomes)
