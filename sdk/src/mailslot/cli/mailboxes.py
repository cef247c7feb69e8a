"""``mailslot mailboxes``, ``show ADDRESS ID`` and ``purge ADDRESS``: mailboxes as a whole.

The SDK has no call that lists mailbox records, so ``mailboxes`` reads the same three things
the sidecar's metrics read (the mail stream's per-subject counts, the lease bucket and the
mailbox records) through ``mailslot_broker``: no consumer is created, nothing is written.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer
from mailslot_broker import kvscan
from mailslot_broker import protocol as p
from mailslot_broker.sidecar import snapshot
from nats.js import errors as jserr
from rich.table import Table

from .._boundary import boundary
from .app import CREDS_OPTION, JSON_OPTION, URL_OPTION, app, client, console, fail, print_json, run
from .mail import message_row, print_fields

#: Every address, however many there are (``snapshot`` ranks and cuts at ``top``).
_ALL = 1 << 30


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat()


async def _bucket(js: Any, bucket: str) -> dict[str, kvscan.KvItem]:
    try:
        return await kvscan.read_bucket(js, bucket)
    except jserr.BucketNotFoundError:
        return {}


async def mailbox_rows(ms: Any) -> list[dict[str, Any]]:
    """One row per address that has mail, a live lease or a kept mailbox record."""
    with boundary():
        depth = (await snapshot(ms.js, top=_ALL)).depth
        leases = await _bucket(ms.js, p.AGENTS_BUCKET)
        records = await _bucket(ms.js, p.MAILBOXES_BUCKET)
    now = time.time()
    rows = []
    for address in sorted({*depth, *leases, *records}):
        per = depth.get(address) or {q.label: 0 for q in p.PRIORITIES}
        lease = leases.get(address)
        rec = p.MailboxRecord.decode(records[address].value) if address in records else None
        if lease is not None:
            presence = "online"
            seen = lease.created.timestamp() if lease.created else None
        elif rec is not None:
            presence = "offline"
            seen = rec.offline_since
        else:
            presence = "never opened"  # mail sent to an address nobody opened (yet)
            seen = None
        due = rec.reclaim_due() if rec is not None and lease is None else None
        rows.append(
            {
                "address": address,
                "depth": per,
                "total": sum(per.values()),
                "presence": presence,
                "last_seen": _iso(seen),
                "keep_s": rec.keep if rec else None,
                # None while the agent is present (the clock starts when its lease lapses)
                "retention_left_s": None if due is None else round(max(0.0, due - now), 1),
            }
        )
    return rows


def _left(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@app.command()
def mailboxes(
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Every mailbox: depth per priority, presence, last seen, retention left."""

    async def _do() -> list[dict[str, Any]]:
        async with await client(url, credentials, start=False) as ms:
            return await mailbox_rows(ms)

    rows = run(_do())
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print("no mailboxes")
        return
    labels = [q.label for q in p.PRIORITIES]
    table = Table("address", *labels, "presence", "last seen", "retention left")
    for r in rows:
        table.add_row(
            r["address"],
            *(str(r["depth"].get(k, 0)) for k in labels),
            r["presence"],
            (r["last_seen"] or "-")[:19],
            _left(r["retention_left_s"]),
        )
    console.print(table)


@app.command()
def show(
    address: str = typer.Argument(..., help="mailbox address"),
    ref: str = typer.Argument(..., metavar="ID", help="message id (or stream sequence)"),
    scan: int = typer.Option(10_000, "--scan", help="look at most this many waiting messages"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """One waiting message with its headers and payload (nothing is taken)."""

    async def _do() -> dict[str, Any] | None:
        async with await client(url, credentials, start=False) as ms:
            for m in await ms.inspect(address).peek(scan):
                if ref in (m.id, str(m.seq)):
                    return message_row(m)
        return None

    row = run(_do())
    if row is None:
        fail(f"no message {ref} waiting in {address} (looked at up to {scan})")
    if json_out:
        print_json(row)
        return
    print_fields(row)


@app.command()
def purge(
    address: str = typer.Argument(..., help="mailbox address"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Delete every message waiting in a mailbox (all priorities). The mailbox, its lease
    and its dead letters stay. Asks first unless --yes (or --json)."""
    if not yes and not json_out:
        typer.confirm(f"delete every message waiting in {address}?", abort=True)

    async def _do() -> int:
        async with await client(url, credentials) as ms:
            view = ms.inspect(address)  # checks the address
            n = (await view.stats()).total
            with boundary():
                await ms.js.purge_stream(p.MAIL_STREAM, subject=p.mail_subject_all_priorities(address))
            return n

    n = run(_do())
    if json_out:
        print_json({"address": address, "purged": n})
    else:
        console.print(f"purged {n} message(s) from {address}")
