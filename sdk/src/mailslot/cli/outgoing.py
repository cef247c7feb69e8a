"""``mailslot send``, ``publish`` and ``ask``: everything that leaves from a shell.

``send`` takes every option of :meth:`mailslot.Mailslot.send`; ``ask`` opens a mailbox of its
own (a fresh address, reclaimed afterwards, unless ``--from`` names one), sends the request
and waits for the reply; ``publish`` broadcasts on a topic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from .app import (
    CREDS_OPTION,
    JSON_OPTION,
    URL_OPTION,
    USAGE,
    app,
    client,
    console,
    fail,
    print_json,
    run,
)
from .mail import message_row, preview

CONTENT_TYPES = ("text", "json", "bytes")

PRIORITY_OPTION = typer.Option("normal", "--priority", "-p", help="critical|urgent|normal|low")
TTL_OPTION = typer.Option(None, "--ttl", help="seconds the message may wait")
CONTENT_OPTION = typer.Option(
    "text", "--content-type", "-t", help="text (text/plain), json (PAYLOAD parsed) or bytes"
)
HEADER_OPTION = typer.Option(None, "--header", "-H", help="NAME=VALUE, repeatable")
IDEM_OPTION = typer.Option(
    None, "--idempotency-key", "-k", help="a retried send with the same key is stored once"
)
THREAD_OPTION = typer.Option(None, "--thread", help="thread id the message belongs to")


def body_of(payload: str, content_type: str, *, as_json: bool = False) -> Any:
    """PAYLOAD ('-' = stdin) as the value the SDK encodes with the wanted content type."""
    kind = "json" if as_json else content_type
    if kind not in CONTENT_TYPES:
        fail(f"--content-type must be one of {', '.join(CONTENT_TYPES)}, not {kind!r}", USAGE)
    if kind == "bytes":
        return sys.stdin.buffer.read() if payload == "-" else payload.encode()
    text = sys.stdin.read() if payload == "-" else payload
    if kind == "text":
        return text
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(f"payload is not JSON: {exc}", USAGE)


def headers_of(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"--header takes NAME=VALUE, not {item!r}", USAGE)
        out[name.strip()] = value
    return out


def receipt_row(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "to": r.to,
        "priority": r.priority.label,
        "seq": r.seq,
        "duplicate": r.duplicate,
        "scheduled": r.scheduled,
    }


# -- send -------------------------------------------------------------------------------------------


@app.command()
def send(
    to: str = typer.Argument(..., help="recipient address"),
    payload: str = typer.Argument(..., help="message text; '-' reads stdin"),
    priority: str = PRIORITY_OPTION,
    ttl: float | None = TTL_OPTION,
    delay: float | None = typer.Option(None, "--delay", help="deliver after this many seconds"),
    content_type: str = CONTENT_OPTION,
    as_json: bool = typer.Option(False, "--payload-json", help="same as --content-type json"),
    sender: str | None = typer.Option(None, "--from", help="sender address"),
    reply_to: str | None = typer.Option(None, "--reply-to", help="where replies should go"),
    correlation_id: str | None = typer.Option(
        None, "--correlation-id", help="the request this message answers"
    ),
    thread_id: str | None = THREAD_OPTION,
    idempotency_key: str | None = IDEM_OPTION,
    header: list[str] | None = HEADER_OPTION,
    notify_undelivered: bool = typer.Option(
        False, "--notify-undelivered", help="bounce notice to the sender if reclaimed unread"
    ),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Put a message in a mailbox; it waits there until received or expired."""
    body = body_of(payload, content_type, as_json=as_json)
    # Mailslot.send's keyword options, as given (the option names say which is which).
    options: dict[str, Any] = {"priority": priority, "ttl": ttl, "delay": delay, "sender": sender}
    options.update(idempotency_key=idempotency_key, headers=headers_of(header), reply_to=reply_to)
    options.update(correlation_id=correlation_id, thread_id=thread_id)
    options.update(notify_undelivered=notify_undelivered)

    async def _do() -> dict[str, Any]:
        async with await client(url, credentials) as ms:
            return receipt_row(await ms.send(to, body, **options))

    receipt = run(_do())
    if json_out:
        print_json(receipt)
        return
    note = " (duplicate)" if receipt["duplicate"] else " (scheduled)" if receipt["scheduled"] else ""
    console.print(
        f"sent [bold]{receipt['id']}[/bold] to {receipt['to']} "
        f"priority {receipt['priority']} seq {receipt['seq']}{note}",
        soft_wrap=True,
    )


# -- publish ----------------------------------------------------------------------------------------


@app.command()
def publish(
    topic: str = typer.Argument(..., help="topic, e.g. builds.done"),
    payload: str = typer.Argument(..., help="message text; '-' reads stdin"),
    durable: bool = typer.Option(
        False, "--durable", help="store it in the topic history (late subscribers can replay it)"
    ),
    ttl: float | None = typer.Option(None, "--ttl", help="with --durable: seconds kept in the history"),
    content_type: str = CONTENT_OPTION,
    header: list[str] | None = HEADER_OPTION,
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Broadcast on a topic. Without --durable it reaches only current subscribers."""
    body, headers = body_of(payload, content_type), headers_of(header)

    async def _do() -> dict[str, Any]:
        async with await client(url, credentials) as ms:
            r = await ms.publish(topic, body, durable=durable, ttl=ttl, headers=headers)
        return {"id": r.id, "topic": r.topic, "durable": r.durable, "seq": r.seq, "duplicate": r.duplicate}

    out = run(_do())
    if json_out:
        print_json(out)
        return
    where = f"stored, seq {out['seq']}" if out["durable"] else "ephemeral"
    console.print(f"published [bold]{out['id']}[/bold] on {out['topic']} ({where})", soft_wrap=True)


# -- ask --------------------------------------------------------------------------------------------


@app.command()
def ask(
    to: str = typer.Argument(..., help="address of the agent to ask"),
    payload: str = typer.Argument(..., help="request text; '-' reads stdin"),
    timeout: float = typer.Option(30.0, "--timeout", help="seconds to wait for the reply (exit 4 after)"),
    priority: str = PRIORITY_OPTION,
    ttl: float | None = TTL_OPTION,
    content_type: str = CONTENT_OPTION,
    thread_id: str | None = THREAD_OPTION,
    idempotency_key: str | None = IDEM_OPTION,
    header: list[str] | None = HEADER_OPTION,
    sender: str | None = typer.Option(
        None, "--from", help="ask from this mailbox (default: a fresh one, reclaimed afterwards)"
    ),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Send a request and wait for its reply (`msg.reply(...)` on the other side); prints it.
    A reply later than --timeout is not collected, unless --from names a mailbox it can wait in."""
    body, headers = body_of(payload, content_type), headers_of(header)

    async def _do() -> dict[str, Any]:
        async with await client(url, credentials) as ms:
            mb = await ms.open(sender, ttl=max(timeout * 2, 10.0), card={"status": "cli"})
            try:
                options: dict[str, Any] = {"priority": priority, "ttl": ttl, "headers": headers}
                options.update(thread_id=thread_id, idempotency_key=idempotency_key)
                return message_row(await mb.ask(to, body, timeout=timeout, **options))
            finally:
                if sender is None:
                    await mb.destroy()  # nobody can find a fresh address again: leave nothing
                else:
                    await mb.close()

    row = run(_do())
    if json_out:
        print_json(row)
        return
    console.print(preview(row, width=10_000), soft_wrap=True, highlight=False, markup=False)
