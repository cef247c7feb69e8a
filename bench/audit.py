"""8. What the audit trail costs: send and receive+ack with the tenant's audit off, on, and on
with bodies kept.

The audit adds no request to either path; the server copies bells, acks and advisories into
``MAILSLOT_AUDIT_IN`` and sources them into ``MAILSLOT_AUDIT``. What it can cost is server
time (two more stores per message and per ack) on a machine the client shares, and with
bodies the bell the receiver gets carries the body. Rounds interleave off / on / on+bodies on
the same server, toggling the audit between them; ratios are on / off.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._common import Bench, median, paired_ratio, unique
from .receive import _mailslot as _receive
from .send import _ms_send

MODES = ("off", "on", "bodies")


async def _mode(b: Bench, mode: str) -> None:
    if mode == "off":
        await b.ms.audit.disable()
    else:
        await b.ms.audit.enable(bodies=mode == "bodies")


async def _send(b: Bench, n: int) -> float:
    to = unique("bench-audit-send")
    rate = await _ms_send(b, to, n)
    await b.purge(to)
    return rate


async def _records(b: Bench) -> int:
    """What the audit holds once its source caught up (it copies a moment after the capture)."""
    for _ in range(50):
        n = (await b.ms.audit.status()).records
        if n:
            return n
        await asyncio.sleep(0.1)
    return 0


async def run(b: Bench) -> dict[str, Any]:
    s = b.scale
    send: dict[str, list[float]] = {m: [] for m in MODES}
    recv: dict[str, list[float]] = {m: [] for m in MODES}
    n_recv = max(100, s.receive // 2)  # three modes: half the receive section's backlog
    await _send(b, 20)  # warm-up
    try:
        for _ in range(s.repeat):
            for mode in MODES:
                await _mode(b, mode)
                send[mode].append(await _send(b, s.send_one))
                recv[mode].append(await _receive(b, n_recv))
        records = await _records(b)
    finally:
        await b.ms.audit.disable()
    return {
        "messages_per_round": {"send": s.send_one, "receive": n_recv},
        "rounds": {"send": send, "receive": recv},
        "records_last_round": records,
        "send_audit_off_msgs_per_s": median(send["off"]),
        "send_audit_on_msgs_per_s": median(send["on"]),
        "send_audit_bodies_msgs_per_s": median(send["bodies"]),
        "receive_audit_off_msgs_per_s": median(recv["off"]),
        "receive_audit_on_msgs_per_s": median(recv["on"]),
        "receive_audit_bodies_msgs_per_s": median(recv["bodies"]),
        "send_on_vs_off_ratio": paired_ratio(send["on"], send["off"]),
        "send_bodies_vs_off_ratio": paired_ratio(send["bodies"], send["off"]),
        "receive_on_vs_off_ratio": paired_ratio(recv["on"], recv["off"]),
        "receive_bodies_vs_off_ratio": paired_ratio(recv["bodies"], recv["off"]),
    }
