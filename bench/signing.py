"""10. What signed senders cost: send one at a time and receive_batch(100) + ack, through an
agent credential whose mail is signed and checked, vs the same without the signature.

"signed" is an agent credential's client as ``connect`` makes it (``mailslot.signing``
wraps its JetStream publish); "unsigned" is the same connection with the wrapper taken off,
so the wire differs only by the ``Mailslot-Signature`` header. On receive the SDK checks the
sender of every message: signed mail costs an ed25519 verify (the sender's public key is
looked up once and cached), unsigned mail returns "unsigned" at once. Rounds interleave the
two; client CPU per message (``time.process_time``) is reported too. ``sign_us`` and
``verify_us`` time the primitives alone.

An agent credential's mail goes through its outbox and the sidecar's mover
(``sidecar/outbox.py``), which the bench runs as the sidecar would. ``hop`` compares one
message's send-to-receive time through the outbox with the same signed mail published
straight into the mail stream (a tenant credential's connection carrying the agent's
signer: what an agent's send was before the outbox), and one-at-a-time send rates of both.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import mailslot
from mailslot import signing
from mailslot_broker import protocol as p
from mailslot_broker.agents import apply_on_tenant, issue_record
from mailslot_broker.sidecar.outbox import OutboxMover
from mailslot_broker.tasks import cancel_and_wait

from ._common import Bench, drain, median, paired_ratio, payload, unique

MODES = ("unsigned", "signed")


async def _agent(b: Bench, address: str) -> mailslot.Mailslot:
    """An agent credential on the bench server (a reload adds its user)."""
    tenant = b.server.tenants[0]
    rec = issue_record(tenant.name, address)
    tenant.agent_users.append(rec.user())
    b.server.write_config()
    await asyncio.to_thread(b.server.reload)
    await apply_on_tenant(b.server.url, tenant.credentials, rec, address)
    path = rec.credentials.write(b.server.workdir / f"{address}.json")
    return await mailslot.connect(b.server.url, credentials=path)


async def _send(agent: mailslot.Mailslot, to: str, n: int) -> float:
    data = payload()
    t0 = time.perf_counter()
    for _ in range(n):
        await agent.send(to, data)
    return n / (time.perf_counter() - t0)


def _primitives(signer: signing.Signer, n: int = 2000) -> tuple[float, float]:
    import nacl.signing
    from mailslot_broker.protocol import principals

    hdrs = {
        p.Header.MSG_ID: "x" * 32,
        p.Header.FROM: signer.address,
        p.Header.SENT_AT: "2026-12-01T00:00:00+00:00",
    }
    data = payload()
    t0 = time.perf_counter()
    for _ in range(n):
        signer.sign("mbox.2.to", data, dict(hdrs))
    sign_us = (time.perf_counter() - t0) / n * 1e6
    key = nacl.signing.VerifyKey(signing.public_key_bytes(signer.public_key))
    h = dict(hdrs)
    signer.sign("mbox.2.to", data, h)
    import base64

    sig = base64.urlsafe_b64decode(h[principals.SIGNATURE_HEADER])
    t0 = time.perf_counter()
    for _ in range(n):
        text = principals.signed_text(
            msg_id="x" * 32, sender=signer.address, to="to", sent_at=h[p.Header.SENT_AT], body=data
        )
        key.verify(text, sig)
    return sign_us, (time.perf_counter() - t0) / n * 1e6


async def _until_moved(b: Bench) -> None:
    """Until the outbox is empty (the mover moved everything sent so far)."""
    for _ in range(3000):
        if not (await b.js.stream_info(p.agent_writes.OUTBOX_STREAM)).state.messages:
            return
        await asyncio.sleep(0.01)


async def _hop(b: Bench, sender: mailslot.Mailslot, direct: mailslot.Mailslot, n: int) -> dict[str, Any]:
    """Send one, receive it, ack; ``n`` times per path, interleaved."""
    box = await b.ms.open(unique("bench-hop"), ttl=120)
    lat: dict[str, list[float]] = {"outbox": [], "direct": []}
    rate: dict[str, list[float]] = {"outbox": [], "direct": []}
    try:
        for path, client in (("outbox", sender), ("direct", direct)) * 2:
            for _ in range(n // 2):
                t0 = time.perf_counter()
                await client.send(box.address, "x")
                m = await box.receive(timeout=10)
                lat[path].append((time.perf_counter() - t0) * 1e3)
                await m.ack()
            rate[path].append(await _send(client, box.address, n))
            await _until_moved(b)
            await b.purge(box.address)
    finally:
        await box.close()
    out: dict[str, Any] = {}
    for path in ("outbox", "direct"):
        ms_sorted = sorted(lat[path])
        out[f"send_to_receive_p50_ms_{path}"] = ms_sorted[len(ms_sorted) // 2]
        out[f"send_to_receive_p90_ms_{path}"] = ms_sorted[int(len(ms_sorted) * 0.9)]
        out[f"send_one_msgs_per_s_{path}"] = median(rate[path])
    return out


async def run(b: Bench) -> dict[str, Any]:
    mover = asyncio.ensure_future(OutboxMover(b.js, is_leader=lambda: True, idle=0.5).run())
    try:
        return await _run(b)
    finally:
        await cancel_and_wait([mover])


async def _run(b: Bench) -> dict[str, Any]:
    s = b.scale
    sender = await _agent(b, unique("bench-signer"))
    receiver = await _agent(b, unique("bench-verifier"))
    signer = sender._link.signer
    assert signer is not None
    tenant = b.server.tenants[0]
    creds = tenant.credentials.write(b.server.workdir / "bench-direct.json")
    direct = await mailslot.connect(b.server.url, credentials=creds, name=sender.name)
    direct._link.signer = signer  # the agent's signed mail, straight into the mail stream
    hop = await _hop(b, sender, direct, max(100, s.send_one))
    await direct.close()

    def mode(m: str) -> None:
        sender._link.signer = signer if m == "signed" else None  # unsigned: what sending skips

    rate: dict[str, dict[str, list[float]]] = {path: {m: [] for m in MODES} for path in ("send", "receive")}
    cpu: dict[str, dict[str, list[float]]] = {path: {m: [] for m in MODES} for path in ("send", "receive")}
    n_recv = max(100, s.receive // 2)
    mb = await receiver.open(receiver.name, ttl=120, heartbeat=2.0)
    sink = unique("bench-sign-sink")
    try:
        await _send(sender, sink, 20)  # warm-up
        await _until_moved(b)
        await b.purge(sink)
        for _ in range(s.repeat):
            for m in MODES:
                mode(m)
                before = time.process_time()
                rate["send"][m].append(await _send(sender, sink, s.send_one))
                cpu["send"][m].append((time.process_time() - before) / s.send_one * 1e6)
                await _until_moved(b)
                await b.purge(sink)
                await sender.send_many({"to": mb.address, "payload": payload()} for _ in range(n_recv))
                before = time.process_time()
                rate["receive"][m].append(await drain(mb, n_recv))
                cpu["receive"][m].append((time.process_time() - before) / n_recv * 1e6)
    finally:
        mode("signed")
        await mb.close()  # an agent credential cannot destroy (that reads the mail stream by sequence)
        await sender.close()
        await receiver.close()
    sign_us, verify_us = _primitives(signer)
    out: dict[str, Any] = {
        "messages_per_round": {"send": s.send_one, "receive": n_recv},
        "rounds": {"msgs_per_s": rate, "client_cpu_us": cpu},
        "sign_us": sign_us,
        "verify_us": verify_us,
        **hop,
    }
    for path in ("send", "receive"):
        for m in MODES:
            out[f"{path}_{m}_msgs_per_s"] = median(rate[path][m])
            out[f"{path}_client_cpu_us_{m}"] = median(cpu[path][m])
        out[f"{path}_signed_vs_unsigned_ratio"] = paired_ratio(rate[path]["signed"], rate[path]["unsigned"])
        out[f"{path}_cpu_signed_vs_unsigned_ratio"] = paired_ratio(cpu[path]["signed"], cpu[path]["unsigned"])
    return out
