"""``send`` and ``send_many`` store nothing they refuse: a hypothesis property over valid,
edge and invalid arguments (payloads, priorities, TTLs, delays, headers, addresses, keys); a
refusal is a typed ``InvalidInput`` naming the argument, and not even a batch's valid first
item is stored. One real nats-server serves every example (``atomic_support``)."""

from __future__ import annotations

import collections
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
from pydantic import BaseModel

EXAMPLES_SEND = 300


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
    address = f"sendprop-{next(address_numbers)}"
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
    env: Env,  # noqa: F811 (the fixture imported from atomic_support)
    case: tuple[dict[str, Any], frozenset[str]],
    many: bool,
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
