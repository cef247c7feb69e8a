"""Metrics equal what the test did; /healthz follows the NATS connection."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import mailslot
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from prometheus_client.parser import text_string_to_metric_families
from testsupport import wait_for

from .conftest import leader_of
from .test_deadletters import _exhaust


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def scrape(url: str) -> dict[str, float]:
    status, text = await asyncio.to_thread(_get, url)
    assert status == 200
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            key = s.name + (
                "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else ""
            )
            out[key] = s.value
    return out


async def test_metrics_match_what_happened(ms, make_sidecar) -> None:
    sc = await leader_of(await make_sidecar())
    base_sent = (await ms.js.stream_info(p.MAIL_STREAM)).state.last_seq
    for prio in ("urgent", "normal", "normal"):
        await ms.send("deep", prio, priority=prio)
    await ms.send("shallow", "x", priority="low")
    worker = await ms.open("worker", ttl=30)
    await ms.send("worker", "do it")
    m = await worker.receive(timeout=5)
    await m.ack()
    flaky = await ms.open("flaky", max_deliver=1, ack_wait=1)
    await ms.send("flaky", "doomed")
    await _exhaust(flaky)
    await wait_for(lambda: len(sc.dead) == 1, timeout=20)
    await ms.send("short-lived", "expires", ttl=1)
    gone = await ms.open("gone", ttl=1, keep=0)
    await gone.close()
    await wait_for(lambda: len(sc.reclaims) == 1, timeout=20)
    await flaky.close()

    want = {
        "mailslot_mailbox_depth{address=deep,priority=urgent}": 1,
        "mailslot_mailbox_depth{address=deep,priority=normal}": 2,
        "mailslot_mailbox_depth{address=deep,priority=low}": 0,
        "mailslot_mailbox_depth{address=shallow,priority=low}": 1,
        "mailslot_messages_waiting": 4,
        "mailslot_messages_sent": base_sent + 7,
        "mailslot_messages_expired_total": 1,
        "mailslot_messages_delivered_total": 1,
        "mailslot_messages_dead_lettered_total": 1,
        "mailslot_dead_letters": 1,
        "mailslot_leases_reclaimed_total": 1,
        "mailslot_sidecar_leader": 1,
        "mailslot_nats_connected": 1,
    }

    async def matches() -> dict[str, float] | None:
        got = await scrape(sc.metrics_url)
        return got if all(got.get(k) == v for k, v in want.items()) else None

    try:
        got = await wait_for(matches, timeout=10, interval=0.3)
    except AssertionError:
        got = await scrape(sc.metrics_url)
        raise AssertionError({k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}) from None
    assert got["mailslot_leases_active"] >= 2  # worker and flaky (flaky's lease is still alive)
    assert 0 <= got["mailslot_reaper_lag_seconds"] < 10
    await worker.close()


async def test_health_follows_nats(server: NatsServer, ms, make_sidecar) -> None:
    sc = await leader_of(await make_sidecar(sweep_interval=30))
    assert (await asyncio.to_thread(_get, sc.health_url))[0] == 200
    mb = await ms.open("outage", ttl=1, keep=0)
    await mb.close()
    await ms.close()
    server.stop()
    await wait_for(lambda: asyncio.to_thread(lambda: _get(sc.health_url)[0] == 503), timeout=15)
    await asyncio.sleep(2.5)  # the lease lapses while NATS is away
    server.start()
    await wait_for(lambda: asyncio.to_thread(lambda: _get(sc.health_url)[0] == 200), timeout=30)
    # The re-sweep after reconnecting reclaims what lapsed meanwhile.
    await wait_for(lambda: any(e.address == "outage" for e in sc.reclaims), timeout=30)
    c = server.credentials
    async with mailslot.connect(server.url, user=c.user, password=c.password) as ms2:
        assert await ms2.inspect("outage").stats() is not None
        kv = await ms2.js.key_value(p.MAILBOXES_BUCKET)
        assert "outage" not in (await kv.keys() if await _has_keys(kv) else [])


async def _has_keys(kv) -> bool:
    from nats.js import errors as jserr

    try:
        await kv.keys()
        return True
    except jserr.NoKeysError:
        return False
