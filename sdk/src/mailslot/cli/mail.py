"""``mailslot inbox``, ``tail``, ``agents``: mail, broadcast and the registry from a shell.

Human output uses rich; ``--json`` prints JSON for scripts (``tail --json`` prints one JSON
object per line, as events arrive).
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from mailslot_broker import protocol as p
from mailslot_broker.reclaim import LEAVE_MARKER_TTL, kv_subject
from rich.table import Table
from rich.text import Text

from ..client import Mailslot
from ..errors import InvalidInput, Timeout
from .app import (
    CREDS_OPTION,
    JSON_OPTION,
    URL_OPTION,
    USAGE,
    app,
    client,
    console,
    err_console,
    fail,
    print_json,
    run,
)
from .query import parse_since, search_agents


def payload_out(content_type: str, data: bytes) -> dict[str, Any]:
    """The payload in a JSON-friendly form: parsed JSON, text, or base64 for raw bytes."""
    if content_type.startswith(p.ContentType.JSON):
        with contextlib.suppress(ValueError):
            return {"payload": json.loads(data)}
    if content_type.startswith("text/") or content_type == p.ContentType.BYTES:
        with contextlib.suppress(UnicodeDecodeError):
            text = data.decode()
            if content_type.startswith("text/"):
                return {"payload": text}
    return {"payload_b64": base64.b64encode(data).decode()}


def preview(row: dict[str, Any], width: int = 60) -> str:
    if "payload" in row:
        v = row["payload"]
        s = v if isinstance(v, str) else json.dumps(v)
    else:
        s = f"<{len(base64.b64decode(row['payload_b64']))} bytes>"
    return s if len(s) <= width else s[: width - 1] + "…"


def message_row(m: Any) -> dict[str, Any]:
    sent = m.sent_at
    return {
        "id": m.id,
        "seq": m.seq,
        "to": m.to,
        "priority": m.priority.label,
        "from": m.sender,
        "sent_at": sent.isoformat() if sent else None,
        "reply_to": m.reply_to,
        "correlation_id": m.correlation_id,
        "thread_id": m.thread_id,
        "content_type": m.content_type,
        "headers": m.user_headers,
        **payload_out(m.content_type, m.data),
    }


# -- inbox ------------------------------------------------------------------------------------------


def _human(value: Any) -> str:
    """A field for people: JSON for structures (never a Python repr), '-' for nothing."""
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def print_fields(row: dict[str, Any]) -> None:
    """One ``name: value`` line per field of a message or dead letter, the headers one per
    line under ``headers:``; values as JSON or text, never Python reprs."""
    row = dict(row)
    headers = row.pop("headers", None) or {}
    for key, value in row.items():
        console.print(Text.assemble((key, "bold"), ": ", _human(value)), soft_wrap=True)
    console.print(Text("headers:", style="bold"))
    for key, value in sorted(headers.items()):
        console.print(Text(f"  {key}: {value}"), soft_wrap=True)


async def _leave_no_trace(ms: Mailslot, address: str) -> None:
    """Undo what a transient ``open()`` created when no agent held the lease: the consumers
    (un-acked mail goes back at once), the lease and the mailbox record, so the mailbox is as
    if never opened and its mail is not reclaimed when the CLI's lease would have lapsed."""
    js = ms.js
    for prio in p.PRIORITIES:
        with contextlib.suppress(Exception):
            await js.delete_consumer(p.MAIL_STREAM, p.consumer_name(address, prio))
    with contextlib.suppress(Exception):
        kv = await js.key_value(p.AGENTS_BUCKET)
        await kv.purge(address, msg_ttl=LEAVE_MARKER_TTL)
    with contextlib.suppress(Exception):
        await js.purge_stream(f"KV_{p.MAILBOXES_BUCKET}", subject=kv_subject(p.MAILBOXES_BUCKET, address))


async def _inbox(
    url: str | None,
    credentials: Path | None,
    address: str,
    *,
    receive: bool,
    ack: bool,
    limit: int,
    timeout: float,
    filters: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    async with await client(url, credentials, start=False) as ms:
        if filters:
            return [message_row(m) for m in await ms.inspect(address).query(limit=limit, **filters)]
        if not receive:
            return [message_row(m) for m in await ms.inspect(address).peek(limit)]
        mb = await ms.open(address, ttl=max(timeout * 3, 10.0), card={"status": "cli"})
        rows: list[dict[str, Any]] = []
        taken: list[Any] = []
        try:
            # A batch comes from one priority level: keep taking (without waiting after the
            # first) until the limit or an empty mailbox. Not-acked mail is given back only at
            # the end, or it would come straight back into this loop.
            wait = timeout
            while len(rows) < limit:
                batch = await mb.receive_batch(max=limit - len(rows), timeout=wait)
                if not batch:
                    break
                wait = 0.0
                for m in batch:
                    row = message_row(m)
                    row["deliveries"] = m.delivery_count
                    row["acked"] = ack
                    if ack:
                        await m.ack()
                    else:
                        taken.append(m)
                    rows.append(row)
            for m in taken:
                await m.nak()
        finally:
            resumed = mb.resumed
            await mb.close()
            if not resumed:
                await _leave_no_trace(ms, address)
        return rows


@app.command()
def inbox(
    address: str = typer.Argument(..., help="mailbox address"),
    receive: bool = typer.Option(
        False, "--receive", help="take messages (highest priority first) instead of peeking"
    ),
    ack: bool = typer.Option(False, "--ack", help="with --receive: ack (remove) what was taken"),
    limit: int = typer.Option(10, "--limit", "-n", help="at most this many messages"),
    timeout: float = typer.Option(1.0, "--timeout", help="with --receive: seconds to wait for mail"),
    tag: list[str] = typer.Option([], "--tag", help="only mail with this tag (repeat: every tag)"),
    key: str | None = typer.Option(None, "--key", help="only mail with this keep-latest key"),
    since: str | None = typer.Option(None, "--since", help="only mail sent since (unix s or ISO 8601)"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Show the mail waiting in a mailbox (peek; `--tag`/`--key`/`--since` filter it).
    `--receive --ack` takes it out."""
    if ack and not receive:
        fail("--ack needs --receive", USAGE)
    if limit < 1:
        fail("--limit must be at least 1", USAGE)
    filters = {"tags": tag or None, "key": key, "since": parse_since(since)}
    filters = {k: v for k, v in filters.items() if v is not None}
    if filters and receive:
        fail("--tag, --key and --since filter a peek, not --receive", USAGE)
    rows = run(
        _inbox(
            url, credentials, address, receive=receive, ack=ack, limit=limit, timeout=timeout, filters=filters
        )
    )
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print(f"no mail for {address}")
        return
    table = Table("seq", "priority", "from", "sent", "payload", title=f"mail for {address}")
    for r in rows:
        table.add_row(str(r["seq"]), r["priority"], r["from"] or "-", (r["sent_at"] or "-")[:19], preview(r))
    console.print(table)
    if receive:
        console.print("acked (removed)" if ack else "given back (not acked)")


# -- tail -------------------------------------------------------------------------------------------


def _parse_replay(value: str | None) -> Any:
    if value is None or value in ("all", "last"):
        return value
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--replay must be all, last or an ISO datetime, not {value!r}") from None


async def _tail(
    url: str | None,
    credentials: Path | None,
    pattern: str,
    *,
    replay: str | None,
    count: int | None,
    timeout: float | None,
    queue: str | None,
    json_out: bool,
) -> int:
    rp = _parse_replay(replay)
    seen = 0
    ms = await client(url, credentials, start=False)
    async with ms, ms.subscribe(pattern, queue=queue, replay=rp) as sub:
        err_console.print(f"listening on {pattern}", highlight=False)
        # The clock starts once listening, so a slow connect does not eat the window.
        deadline = None if timeout is None else time.monotonic() + timeout
        while count is None or seen < count:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                break
            try:
                ev = await sub.next(timeout=wait)
            except (Timeout, StopAsyncIteration):
                break
            seen += 1
            row = {
                "topic": ev.topic,
                "durable": ev.durable,
                "replayed": ev.replayed,
                "seq": ev.seq,
                "id": ev.id,
                "from": ev.sender,
                "sent_at": ev.sent_at.isoformat() if ev.sent_at else None,
                "headers": ev.user_headers,
                **payload_out(ev.content_type, ev.data),
            }
            if json_out:
                sys.stdout.write(json.dumps(row, default=str) + "\n")
                sys.stdout.flush()
            else:
                mark = "[dim]history[/dim] " if ev.replayed else ""
                console.print(f"{mark}[bold]{ev.topic}[/bold] {preview(row, 200)}")
    return seen


@app.command()
def tail(
    pattern: str = typer.Argument(..., help="topic pattern: '*' one token, final '>' the rest"),
    replay: str | None = typer.Option(
        None, "--replay", help="all | last | ISO datetime: durable history first"
    ),
    count: int | None = typer.Option(None, "--count", "-n", help="stop after N messages"),
    timeout: float | None = typer.Option(None, "--timeout", help="stop S seconds after it starts listening"),
    queue: str | None = typer.Option(None, "--queue", help="join this queue group"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Print broadcasts on topics matching PATTERN as they arrive (Ctrl-C stops)."""
    with contextlib.suppress(KeyboardInterrupt):
        run(
            _tail(
                url,
                credentials,
                pattern,
                replay=replay,
                count=count,
                timeout=timeout,
                queue=queue,
                json_out=json_out,
            )
        )


# -- agents -----------------------------------------------------------------------------------------


async def _agents(
    url: str | None, credentials: Path | None, capability: str | None, tag: str | None
) -> list[dict[str, Any]]:
    async with await client(url, credentials, start=False) as ms:
        return [c.model_dump() for c in await ms.agents(capability=capability, tag=tag)]


@app.command()
def agents(
    capability: str | None = typer.Option(None, "--capability", help="only agents with this capability"),
    tag: str | None = typer.Option(None, "--tag", help="only agents with this tag"),
    search: str | None = typer.Option(None, "--search", help="agents whose card holds every word"),
    page: int = typer.Option(1, "--page", help="with --search: this page of results"),
    limit: int = typer.Option(20, "--limit", "-n", help="with --search: results per page"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """List live agents (their lease is alive) with their cards; `--search` finds them by
    words over name, description, skills, tags and metadata, best match first."""
    if search is not None and (capability or tag):
        fail("--search does not combine with --capability/--tag", USAGE)
    if search is not None:
        cards = run(search_agents(url, credentials, search, limit=limit, page=page))
    else:
        cards = run(_agents(url, credentials, capability, tag))
    if json_out:
        print_json(cards)
        return
    if not cards:
        console.print("no live agents")
        return
    table = Table("address", "name", "capabilities", "tags", "status", "description")
    for c in cards:
        table.add_row(
            c["address"] or "-",
            c["name"] or "-",
            ", ".join(c["capabilities"] + c["skills"]),
            ", ".join(c["tags"]),
            c["status"],
            (c["description"] or "")[:50],
        )
    console.print(table)
