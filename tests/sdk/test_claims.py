"""Advisory claims on a real server: exclusive under races, all or none, expiring, renewed and
released only by their holder."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator

import mailslot
import pytest
from mailslot import sync
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from testsupport import unique, wait_for


@contextlib.asynccontextmanager
async def agent(server: NatsServer, name: str) -> AsyncIterator[mailslot.Mailslot]:
    """A client named after its agent: its name is the claims' holder."""
    c = server.credentials
    async with await mailslot.connect(server.url, user=c.user, password=c.password, name=name) as client:
        yield client


async def test_two_agents_race_for_one_path_exactly_one_wins(shared_server: NatsServer) -> None:
    a_name, b_name = unique("alice"), unique("bob")
    async with agent(shared_server, a_name) as a, agent(shared_server, b_name) as b:
        for round_ in range(25):
            path = f"src/{unique('race')}/mod {round_}.py"

            async def take(
                who: mailslot.Mailslot, path: str = path
            ) -> mailslot.Claim | mailslot.ClaimConflict:
                try:
                    (c,) = await who.claims.claim([path], ttl=30, reason="editing")
                    return c
                except mailslot.ClaimConflict as exc:
                    return exc

            results = await asyncio.gather(take(a), take(b))
            won = [r for r in results if isinstance(r, mailslot.Claim)]
            lost = [r for r in results if isinstance(r, mailslot.ClaimConflict)]
            assert len(won) == 1 and len(lost) == 1, results
            (holder,) = lost[0].claims
            assert holder.key == path and holder.holder == won[0].holder in (a_name, b_name)
            assert holder.reason == "editing" and holder.expires_at > holder.claimed_at
            assert won[0].holder in str(lost[0])
            (listed,) = await a.claims.list(prefix=path)
            assert listed.holder == won[0].holder


async def test_all_or_none_leaves_nothing_of_the_loser(shared_server: NatsServer) -> None:
    root = unique("repo")
    first, second, third = f"{root}/a.py", f"{root}/b/ü ñ.md", f"{root}/c.txt"
    async with agent(shared_server, unique("a")) as a, agent(shared_server, unique("b")) as b:
        await a.claims.claim([second], ttl=30)
        with pytest.raises(mailslot.ClaimConflict) as err:
            await b.claims.claim([first, second, third], ttl=30)
        assert [(c.key, c.holder) for c in err.value.claims] == [(second, a.name)]
        assert [(c.key, c.holder) for c in await b.claims.list(prefix=root)] == [(second, a.name)]
        # what the loser wrote and took back does not stand in anyone's way
        got = await a.claims.claim([third, first], ttl=30)
        assert [c.key for c in got] == [third, first]
        assert await a.claims.release([first, second, third]) == [first, second, third]
        assert await a.claims.list(prefix=root) == []
        assert [c.key for c in await b.claims.claim([first, second, third], ttl=30)] == [first, second, third]


async def test_expiry_frees_renew_extends_release_is_the_holders(shared_server: NatsServer) -> None:
    path, kept = unique("lib/x.py"), unique("lib/y.py")
    async with agent(shared_server, unique("a")) as a, agent(shared_server, unique("b")) as b:
        (short,) = await a.claims.claim(path, ttl=1)
        start = time.monotonic()
        with pytest.raises(mailslot.ClaimConflict):
            await b.claims.claim(path, ttl=5)

        async def b_gets_it() -> bool:
            try:
                await b.claims.claim(path, ttl=5)
                return True
            except mailslot.ClaimConflict:
                return False

        await wait_for(b_gets_it, timeout=10, interval=0.1)
        assert time.monotonic() - start > 0.5
        (now_b,) = await a.claims.list(prefix=path)
        assert now_b.holder == b.name and now_b.expires_at > short.expires_at

        # release by a non-holder is refused, and removes nothing
        with pytest.raises(mailslot.ClaimNotHeld) as err:
            await a.claims.release(path)
        assert [c.holder for c in err.value.claims] == [b.name]
        with pytest.raises(mailslot.ClaimNotHeld):
            await a.claims.renew(path, ttl=30)
        assert [c.holder for c in await a.claims.list(prefix=path)] == [b.name]
        assert await b.claims.release(path) == [path]
        assert await b.claims.release(path) == []  # not claimed: nothing to do

        # renew extends past the first TTL
        (c,) = await a.claims.claim(kept, ttl=2)
        await asyncio.sleep(1.0)
        (renewed,) = await a.claims.renew([kept], ttl=4)
        assert renewed.expires_at > c.expires_at and renewed.claimed_at == c.claimed_at
        await asyncio.sleep(2.0)  # past the first TTL
        assert [x.holder for x in await b.claims.list(prefix=kept)] == [a.name]
        with pytest.raises(mailslot.ClaimConflict):
            await b.claims.claim(kept, ttl=5)
        await a.claims.release(kept)
        with pytest.raises(mailslot.ClaimNotHeld):
            await a.claims.renew(kept, ttl=5)  # released: nothing to renew


@pytest.mark.parametrize("ttl", [math.inf, math.nan, 0, -1, 0.5, "5", None, p.MAX_CLAIM_TTL + 1])
async def test_bad_ttl_is_refused_before_anything_is_written(
    shared_ms: mailslot.Mailslot, ttl: object
) -> None:
    path = unique("bad-ttl")
    with pytest.raises(mailslot.InvalidTTL):
        await shared_ms.claims.claim([path], ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(mailslot.InvalidTTL):
        await shared_ms.claims.renew([path], ttl=ttl)  # type: ignore[arg-type]
    assert await shared_ms.claims.list(prefix=path) == []


@pytest.mark.parametrize(
    "keys",
    [
        [],
        [""],
        ["a\nb"],
        [7],
        b"x",
        ["x" * (p.MAX_CLAIM_KEY_BYTES + 1)],
        [f"k{i}" for i in range(p.MAX_CLAIM_KEYS + 1)],
    ],
)
async def test_bad_keys_are_refused(shared_ms: mailslot.Mailslot, keys: object) -> None:
    for call in (
        shared_ms.claims.claim(keys, ttl=5),  # type: ignore[arg-type]
        shared_ms.claims.renew(keys, ttl=5),  # type: ignore[arg-type]
        shared_ms.claims.release(keys),  # type: ignore[arg-type]
    ):
        with pytest.raises(mailslot.InvalidInput):
            await call


async def test_a_holder_is_needed(shared_server: NatsServer) -> None:
    c = shared_server.credentials
    async with await mailslot.connect(shared_server.url, user=c.user, password=c.password) as anonymous:
        with pytest.raises(mailslot.InvalidInput, match="holder"):
            await anonymous.claims.claim("x", ttl=5)
        (got,) = await anonymous.claims.claim(unique("x"), ttl=5, holder="ci-job-7")
        assert got.holder == "ci-job-7"
        assert await anonymous.claims.release(got.key, holder="ci-job-7") == [got.key]


def test_sync_twin(shared_server: NatsServer) -> None:
    c = shared_server.credentials
    path = unique("sync/a.py")
    with sync.connect(shared_server.url, user=c.user, password=c.password, name=unique("s")) as ms:
        (got,) = ms.claims.claim([path], ttl=5, reason="r")
        assert got.holder == ms.name and got.reason == "r"
        assert [x.key for x in ms.claims.list(path)] == [path]
        assert [x.key for x in ms.claims.renew(path, ttl=5)] == [path]
        assert ms.claims.release(path) == [path]
        assert ms.claims.list(path) == []
