"""8. What the audit trail costs: send and receive+ack with the tenant's audit off, on, and on
with bodies kept.

The audit adds no request to either path; the server copies bells, acks and advisories into
``MAILSLOT_AUDIT_IN`` and sources them into ``MAILSLOT_AUDIT``. What it can cost is server
time (two more stores per message and per ack) on a machine the client shares, and with
bodies the bell the receiver gets carries the body. Rounds interleave off / on / on+bodies on
the same server, toggling the audit between them; ratios are on / off. Throughput on a shared
machine is noisy, so each round also counts the nats-server's own CPU time per message (until a
short settle after the round, when the audit's copies are done): the work the audit adds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from ._common import Bench, median, paired_ratio, unique
from .receive import _mailslot as _receive
from .send import _ms_send

MODES = ("off", "on", "bodies")
_SETTLE = 0.2


async def _mode(b: Bench, mode: str) -> None:
    if mode == "off":
        await b.ms.audit.disable()
    else:
        await b.ms.audit.enable(bodies=mode == "bodies")


def _server_cpu(b: Bench) -> float:
    """CPU seconds (user + system) the nats-server process has used, from /proc."""
    fields = Path(f"/proc/{b.server.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _cpu_of(b: Bench, round_: Awaitable[float], n: int, cpu: list[float]) -> float:
    """Run one round; append the server's CPU µs per message, counted until the audit's
    copies are done too (a short settle after the round, the same in every mode)."""
    before = _server_cpu(b)
    rate = await round_
    await asyncio.sleep(_SETTLE)
    cpu.append((_server_cpu(b) - before) / n * 1e6)
    return rate


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
    send_cpu: dict[str, list[float]] = {m: [] for m in MODES}
    recv_cpu: dict[str, list[float]] = {m: [] for m in MODES}
    n_recv = max(100, s.receive // 2)  # three modes: half the receive section's backlog
    await _send(b, 20)  # warm-up
    try:
        for _ in range(s.repeat):
            for mode in MODES:
                await _mode(b, mode)
                send[mode].append(await _cpu_of(b, _send(b, s.send_one), s.send_one, send_cpu[mode]))
                recv[mode].append(await _cpu_of(b, _receive(b, n_recv), n_recv, recv_cpu[mode]))
        records = await _records(b)
    finally:
        await b.ms.audit.disable()
    return {
        "messages_per_round": {"send": s.send_one, "receive": n_recv},
        "rounds": {"send": send, "receive": recv, "send_cpu_us": send_cpu, "receive_cpu_us": recv_cpu},
        "records_last_round": records,
        "send_audit_off_msgs_per_s": median(send["off"]),
        "send_audit_on_msgs_per_s": median(send["on"]),
        "send_audit_bodies_msgs_per_s": median(send["bodies"]),
        "receive_audit_off_msgs_per_s": median(recv["off"]),
        "receive_audit_on_msgs_per_s": median(recv["on"]),
        "receive_audit_bodies_msgs_per_s": median(recv["bodies"]),
        **{f"send_server_cpu_us_{m}": median(send_cpu[m]) for m in MODES},
        **{f"receive_server_cpu_us_{m}": median(recv_cpu[m]) for m in MODES},
        "send_cpu_on_vs_off_ratio": paired_ratio(send_cpu["on"], send_cpu["off"]),
        "send_cpu_bodies_vs_off_ratio": paired_ratio(send_cpu["bodies"], send_cpu["off"]),
        "receive_cpu_on_vs_off_ratio": paired_ratio(recv_cpu["on"], recv_cpu["off"]),
        "receive_cpu_bodies_vs_off_ratio": paired_ratio(recv_cpu["bodies"], recv_cpu["off"]),
        "send_on_vs_off_ratio": paired_ratio(send["on"], send["off"]),
        "send_bodies_vs_off_ratio": paired_ratio(send["bodies"], send["off"]),
        "receive_on_vs_off_ratio": paired_ratio(recv["on"], recv["off"]),
        "receive_bodies_vs_off_ratio": paired_ratio(recv["bodies"], recv["off"]),
    }
