"""``mailslot dlq list|show|requeue|purge``: the dead-letter queue from a shell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from mailslot_broker import protocol as p
from mailslot_broker.protocol import Header
from rich.table import Table

from ..connection import connect
from ..deadletters import DeadLetter
from .app import CREDS_OPTION, JSON_OPTION, URL_OPTION, app, client, console, print_json, run
from .mail import payload_out, print_fields

dlq_app = typer.Typer(
    help="Dead letters: messages that ran out of deliveries or were terminated.",
    rich_markup_mode="markdown",
)
app.add_typer(dlq_app, name="dlq")


def _detail(d: DeadLetter) -> dict[str, Any]:
    """The dead letter as JSON-able values: the payload parsed as its content type says
    (``payload``), or base64 (``payload_b64``) for bytes that are not text."""
    out = d.as_dict()
    # No content type kept: read it as text (base64 if it is not UTF-8).
    out["content_type"] = ctype = d.headers.get(Header.CONTENT_TYPE, p.ContentType.TEXT)
    out.update(payload_out(ctype, d.data))
    out["headers"] = d.headers
    return out


@dlq_app.command("list")
def list_(
    address: str | None = typer.Option(None, "--address", "-a", help="only this mailbox"),
    limit: int = typer.Option(100, "--limit", "-n"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Dead letters, oldest first."""

    async def _do() -> list[DeadLetter]:
        async with await client(url, credentials, start=False) as ms:
            return await ms.dead_letters.list(address, limit=limit)

    items = run(_do())
    if json_out:
        print_json([d.as_dict() for d in items])
        return
    table = Table("seq", "id", "address", "priority", "reason", "deliveries", "dead at")
    for d in items:
        table.add_row(
            str(d.seq),
            d.id,
            d.address,
            d.priority.label,
            d.reason,
            str(d.deliveries),
            d.dead_at.strftime("%Y-%m-%d %H:%M:%S") if d.dead_at else "-",
        )
    console.print(table if items else "no dead letters")


@dlq_app.command()
def show(
    ref: str = typer.Argument(..., help="DLQ sequence or message id"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """One dead letter with its headers and payload."""

    async def _do() -> DeadLetter:
        async with await client(url, credentials, start=False) as ms:
            return await ms.dead_letters.get(ref)

    d = _detail(run(_do()))
    if json_out:
        print_json(d)
        return
    print_fields(d)


@dlq_app.command()
def requeue(
    ref: str = typer.Argument(..., help="DLQ sequence or message id"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Put a dead letter back in its mailbox (same id and priority)."""

    async def _do() -> dict[str, Any]:
        async with connect(url, credentials=credentials) as ms:
            r = await ms.dead_letters.requeue(ref)
            if r is None:
                return {"ref": ref, "requeued": False}
            return {"id": r.id, "to": r.to, "priority": r.priority.label, "seq": r.seq, "requeued": True}

    out = run(_do())
    if json_out:
        print_json(out)
    elif not out["requeued"]:
        console.print(f"nothing to requeue: {ref} is no longer in dead letters (already requeued or purged)")
    else:
        console.print(f"requeued {out['id']} to {out['to']} ({out['priority']})")


@dlq_app.command()
def purge(
    address: str | None = typer.Option(None, "--address", "-a", help="only this mailbox"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Delete dead letters (all, or one mailbox's)."""
    if not yes and not json_out:
        typer.confirm(f"delete the dead letters of {address or 'every mailbox'}?", abort=True)

    async def _do() -> int:
        async with connect(url, credentials=credentials) as ms:
            return await ms.dead_letters.purge(address)

    n = run(_do())
    if json_out:
        print_json({"purged": n})
    else:
        console.print(f"purged {n} dead letter(s)")
