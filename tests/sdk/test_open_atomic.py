"""``open`` is all or nothing: a hypothesis property (``send``'s is in test_send_atomic.py).

One real nats-server (the project's launcher) and one client serve every example
(``atomic_support``).

For ``open`` the arguments mix valid values, edges (each limit and just past it) and bad
ones (inf, nan, negatives, 1e30, huge ints, bools, strings, timedeltas, backoff lists with a
bad step, ``max_deliver`` not above the backoff length), and the address is one of:

- ``fresh``: nothing there;
- ``offline``: an offline mailbox (record with ``offline_since``, mail waiting, no lease and
  no consumers), which a failed open must leave exactly as it was;
- ``squatted``: another consumer already filters the address's ``low`` level and mail waits at
  normal and low (an open binds only the levels holding mail), so the server refuses the low
  consumer after the record, the lease and the normal consumer were written;
- ``live``: a replica holds the lease and the consumer of the level holding its mail, which
  must survive a failed open;

and some calls are cancelled after a random delay. Either ``open`` succeeds, or it raises a
``MailslotError`` (or the cancellation) and nothing it created is left on the server.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import mailslot
import pytest
from atomic_support import (
    INF,
    NAN,
    Env,
    address_numbers,
    bad_seconds,
    env,  # noqa: F401 (a fixture: used by name)
    seconds_in,
    wipe,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mailslot_broker import protocol as p
from nats.js import errors as jserr
from testsupport import squat

EXAMPLES_OPEN = 300


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
        await ms.send(address, "the replica's")  # so the replica holds a consumer
        replica = await ms.open(address, ttl=60)
    return await state(ms, address), replica


async def _open_once(
    ms: mailslot.Mailslot, kind: str, args: dict[str, Any], cancel_after: float | None
) -> tuple[str, BaseException | None]:
    address = f"atomic-{next(address_numbers)}"
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
                assert after == State(None, False, frozenset(), 2), (args, error)
                await ms.js.consumer_info(p.MAIL_STREAM, f"squat-{address}")  # theirs stays
            else:  # live: the replica keeps its lease, record and consumers
                assert after.lease_live and after.record == before.record, (args, error)
                assert after.consumers == before.consumers == {p.Priority.NORMAL}, (args, error)
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
@example(kind="fresh", case=({}, frozenset()), cancel_after=0.0)  # a fresh open is fast now
@example(kind="offline", case=({}, frozenset()), cancel_after=0.0)
@example(kind="offline", case=({"keep": 60}, frozenset()), cancel_after=0.004)
@example(kind="live", case=({}, frozenset()), cancel_after=0.0)
@example(kind="live", case=({"ack_wait": 5}, frozenset()), cancel_after=0.004)
@example(kind="squatted", case=({}, frozenset()), cancel_after=None)
@example(kind="fresh", case=({}, frozenset()), cancel_after=None)
@example(kind="offline", case=({"ttl": INF}, frozenset({"ttl"})), cancel_after=None)
@example(kind="live", case=({"max_deliver": 0}, frozenset({"max_deliver"})), cancel_after=None)
def test_open_is_all_or_nothing(
    env: Env,  # noqa: F811 (the fixture imported from atomic_support)
    kind: str,
    case: tuple[dict[str, Any], frozenset[str]],
    cancel_after: float | None,
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
