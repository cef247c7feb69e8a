"""Leader election over the KV lease: one leader at a time, fast hand-over on resign, takeover
after expiry when the leader just vanishes."""

from __future__ import annotations

from mailslot_broker.sidecar import LeaderElection
from testsupport import wait_for


async def test_one_leader_then_handover(ms) -> None:
    a = LeaderElection(ms.js, "a", ttl=1.5)
    b = LeaderElection(ms.js, "b", ttl=1.5)
    assert await a.step() is True
    assert await b.step() is False
    assert await a.step() is True  # renewal keeps it
    assert await b.step() is False
    await a.stop(resign=True)  # clean shutdown: immediate hand-over
    assert await b.step() is True
    # b vanishes without resigning: a wins only after the TTL lapsed.
    c = LeaderElection(ms.js, "c", ttl=1.5)
    assert await c.step() is False
    await wait_for(c.step, timeout=10, interval=0.2)
    assert c.is_leader
    assert await b.step() is False and not b.is_leader  # the old leader notices it lost
