"""``mailslot audit [--from] [--to] [--since] [--message ID] [--json]`` and ``mailslot audit
enable|disable|status``: the tenant's audit trail from a shell."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import typer
from rich.table import Table

from ..audit import KINDS, AuditRecord, AuditStatus
from ..errors import InvalidInput
from .app import CREDS_OPTION, JSON_OPTION, URL_OPTION, app, client, console, print_json, run

audit_app = typer.Typer(
    help="The audit trail: who wrote to whom, and what became of each message (opt-in per tenant).",
    rich_markup_mode="markdown",
    invoke_without_command=True,
)
app.add_typer(audit_app, name="audit")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str, *, what: str) -> timedelta:
    """``90s``, ``15m``, ``12h``, ``30d``, ``2w`` (a bare number is seconds)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text or "")
    if not m:
        raise InvalidInput(f"{what}: {text!r} is not a duration such as 90s, 15m, 12h, 30d")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2) or "s"])


def since_of(text: str | None) -> datetime | timedelta | None:
    """A duration (that long ago) or an ISO 8601 time (UTC if it names no offset)."""
    if text is None:
        return None
    try:
        return duration(text, what="--since")
    except InvalidInput:
        pass
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"--since: {text!r} is neither a duration (30m, 2d) nor an ISO 8601 time"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _status_line(s: AuditStatus) -> str:
    if not s.enabled:
        return "audit: off"
    days = (s.retention or 0) / 86400
    bodies = "kept" if s.bodies else "not kept"
    return f"audit: on, bodies {bodies}, retention {days:g} d, {s.records} records"


@audit_app.callback()
def query(
    ctx: typer.Context,
    sender: str | None = typer.Option(None, "--from", help="mail from this address"),
    recipient: str | None = typer.Option(None, "--to", help="mail to this address"),
    since: str | None = typer.Option(None, "--since", help="30m, 2d, or an ISO 8601 time"),
    message: str | None = typer.Option(None, "--message", help="everything about this message id"),
    kind: list[str] = typer.Option([], "--kind", help=f"only these kinds ({', '.join(KINDS)})"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Audit records, oldest first: stored mail (who to whom, when, priority, size, ids) and
    what became of it (acked, nacked, termed, exhausted, dead) and by whom."""
    if ctx.invoked_subcommand is not None:
        return

    async def _do() -> list[AuditRecord]:
        when = since_of(since)
        async with await client(url, credentials, start=False) as ms:
            return await ms.audit.query(
                sender=sender, recipient=recipient, since=when, message_id=message, kinds=kind or None
            )

    records = run(_do())
    if json_out:
        print_json([r.as_dict() for r in records])
        return
    table = Table("at", "kind", "seq", "id", "from", "to", "priority", "by", "detail")
    for r in records:
        detail = r.reason or ""
        if r.kind == "stored":
            detail = f"{r.size} B" + (f", thread {r.thread_id}" if r.thread_id else "")
        elif r.deliveries is not None:
            detail = f"{detail} (delivery {r.deliveries})".strip()
        table.add_row(
            r.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            r.kind,
            str(r.seq),
            r.message_id or "",
            r.sender or "",
            r.recipient or "",
            r.priority.label if r.priority is not None else "",
            r.by or "",
            detail,
        )
    console.print(table)
    console.print(f"{len(records)} record(s)")


@audit_app.command("enable")
def enable(
    bodies: bool = typer.Option(False, "--bodies", help="keep message bodies too"),
    retention: str = typer.Option("30d", "--retention", help="how long records are kept (e.g. 30d, 12h)"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Start recording this tenant's mail (or change bodies/retention of a running audit)."""

    async def _do() -> AuditStatus:
        keep = duration(retention, what="--retention")
        async with await client(url, credentials, start=False) as ms:
            return await ms.audit.enable(bodies=bodies, retention=keep)

    s = run(_do())
    if json_out:
        print_json(s)
        return
    console.print(_status_line(s))


@audit_app.command("disable")
def disable(
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
) -> None:
    """Stop recording and delete the records."""

    async def _do() -> bool:
        async with await client(url, credentials, start=False) as ms:
            return await ms.audit.disable()

    was_on = run(_do())
    console.print("audit: off" + ("" if was_on else " (it was off)"))


@audit_app.command("status")
def status(
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Whether the audit records, whether it keeps bodies, its retention and size."""

    async def _do() -> AuditStatus:
        async with await client(url, credentials, start=False) as ms:
            return await ms.audit.status()

    s = run(_do())
    if json_out:
        print_json(s)
        return
    console.print(_status_line(s))


__all__ = ["audit_app", "duration", "since_of"]
