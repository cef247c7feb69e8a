"""Nothing acked is lost, nothing acked comes back: crashes of the broker and of agents."""

import asyncio
import json
import signal

import mailslot
import pytest
from mailslot_broker import reclaim_expired
from testsupport import client_env, run_procs, start_procs


def test_offline_delivery_across_processes(server):
    env = client_env(server)
    r = run_procs("send", "offline-agent", "25", "job-", env=env)
    assert r.returncode == 0, r.stderr
    r = run_procs("receive", "offline-agent", "25", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == [f"job-{i}" for i in range(25)]


async def test_kill_9_broker_with_stored_mail(server):
    c = server.credentials
    ms = await mailslot.connect(server.url, user=c.user, password=c.password)
    receipts = await ms.send_many([{"to": "survivor", "payload": i} for i in range(1000)])
    assert len({r.seq for r in receipts}) == 1000
    mb = await ms.open("survivor", ack_wait=3)
    acked = []
    for m in await mb.receive_batch(max=100, timeout=5):
        await m.ack()
        acked.append(m.json())
    await ms.close()

    server.kill()  # SIGKILL: no graceful shutdown
    server.start()

    ms = await mailslot.connect(server.url, user=c.user, password=c.password)
    try:
        mb = await ms.open("survivor", ack_wait=3)
        rest = []
        while True:
            batch = await mb.receive_batch(max=100, timeout=2)
            if not batch:
                break
            for m in batch:
                rest.append(m.json())
            await asyncio.gather(*(m.ack() for m in batch))
        assert sorted(acked + rest) == list(range(1000))
        assert not set(acked) & set(rest), "an acked message was delivered again"
        # and nothing comes back after the ack wait
        await asyncio.sleep(3.5)
        assert await mb.receive_batch(max=10, timeout=1) == []
        assert (await ms.inspect("survivor").stats()).total == 0
    finally:
        await ms.close()


async def test_client_rides_through_broker_restart(server):
    c = server.credentials
    async with mailslot.connect(server.url, user=c.user, password=c.password) as ms:
        mb = await ms.open("steady")
        await ms.send("steady", "before")
        server.kill()
        server.start()
        m = await mb.receive(timeout=20)
        assert m.text() == "before"
        await m.ack()
        await ms.send("steady", "after")
        m = await mb.receive(timeout=20)
        assert m.text() == "after"
        await m.ack()


async def test_receiver_killed_before_ack_is_redelivered_to_another(server):
    env = client_env(server)
    c = server.credentials
    async with mailslot.connect(server.url, user=c.user, password=c.password) as ms:
        await ms.send("worker", "the job")
        proc = start_procs("hold", "worker", env=env)  # a child we kill
        try:
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert json.loads(line) == {"held": "the job"}
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
        mb = await ms.open("worker", ack_wait=2, heartbeat=1)
        m = await mb.receive(timeout=15)
        assert m.text() == "the job" and m.delivery_count == 2
        await m.ack()


async def test_lease_lapse_reclaim_leaves_nothing(ms):
    mb = await ms.open("short-lived", ttl=2, keep=0)
    await ms.send("short-lived", "one")
    await ms.send("short-lived", "two", priority="critical")
    await ms.send("short-lived", "later", delay=30)
    await mb.close()  # stops renewing; the lease lapses 2 s later
    assert await reclaim_expired(ms.js, grace=0) == []  # still alive
    await asyncio.sleep(3.5)
    reports = await reclaim_expired(ms.js, grace=0)
    assert [r.address for r in reports] == ["short-lived"]
    assert reports[0].messages_dead_lettered == 3  # the delayed one too: nothing goes silently
    assert {d.reason for d in await ms.dead_letters.list("short-lived")} == {"mailbox reclaimed"}
    assert (await ms.inspect("short-lived").stats()).total == 0
    names = [c.name for c in await ms.js.consumers_info("MAILSLOT_MAIL")]
    assert not [n for n in names if n.startswith("mbx-")]
    for bucket in ("MAILSLOT_AGENTS", "MAILSLOT_MAILBOXES"):
        info = await ms.js.stream_info(f"KV_{bucket}")
        assert info.state.messages == 0, bucket
    info = await ms.js.stream_info("MAILSLOT_MAIL")
    assert info.state.messages == 0


async def test_alive_lease_is_renewed(ms):
    mb = await ms.open("renewing", ttl=2)
    await asyncio.sleep(4)
    assert await reclaim_expired(ms.js, grace=0) == []
    assert mb._lease is not None and mb._lease.renewals >= 2
    await ms.send("renewing", "still here")
    assert (await mb.receive(timeout=5)).text() == "still here"


@pytest.mark.parametrize("n", [3])
async def test_redelivery_never_duplicates_acked(ms, n):
    await ms.send_many([{"to": "once", "payload": i} for i in range(n)])
    mb = await ms.open("once", ack_wait=1)
    got = []
    for _ in range(n):
        m = await mb.receive(timeout=5)
        got.append(m.json())
        await m.ack()
    await asyncio.sleep(2)
    assert await mb.receive_batch(max=5, timeout=0.5) == []
    assert sorted(got) == list(range(n))


async def test_reopen_after_lapse_is_a_new_lease_not_a_resume(ms):
    mb = await ms.open("phoenix", ttl=1)
    await mb.close()
    await asyncio.sleep(2.5)  # lapsed; the server leaves a limit marker behind for a while
    again = await ms.open("phoenix", ttl=5)
    assert not again.resumed
    kv = await ms.js.key_value("MAILSLOT_AGENTS")
    assert (await kv.get("phoenix")).value
    still = await ms.open("phoenix", ttl=5)
    assert still.resumed


async def test_ack_many_is_confirmed_before_a_crash(server):
    c = server.credentials
    ms = await mailslot.connect(server.url, user=c.user, password=c.password)
    await ms.send_many(
        [{"to": "batchy", "payload": i, "priority": "urgent" if i % 3 else "low"} for i in range(300)]
    )
    mb = await ms.open("batchy", ack_wait=2)
    seen = []
    while len(seen) < 300:
        batch = await mb.receive_batch(max=100, timeout=5)
        seen += [m.json() for m in batch]
        await mb.ack_many(batch)
    with pytest.raises(mailslot.AlreadyAcknowledged):
        await mb.ack_many(batch[:1])
    await ms.close()
    server.kill()  # right after the last confirmation
    server.start()
    async with mailslot.connect(server.url, user=c.user, password=c.password) as ms:
        assert sorted(seen) == list(range(300))
        assert (await ms.inspect("batchy").stats()).total == 0
        mb = await ms.open("batchy", ack_wait=2)
        assert await mb.receive_batch(max=10, timeout=3) == []
