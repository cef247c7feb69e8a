"""``mailslot delete-message ADDRESS ID``, and the filters ``inbox --tag/--key/--since`` and
``agents --search`` use: mail and agents found without taking anything."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer

from .app import CREDS_OPTION, JSON_OPTION, URL_OPTION, USAGE, app, client, console, fail, print_json, run


def parse_since(value: str | None) -> datetime | None:
    """``--since``: unix seconds or an ISO 8601 time (UTC when it has no offset)."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since {value!r} is neither unix seconds nor an ISO 8601 time", USAGE)
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _ref(value: str) -> int | str:
    return int(value) if value.isdigit() else value


@app.command("delete-message")
def delete_message(
    address: str = typer.Argument(..., help="mailbox address"),
    ref: str = typer.Argument(..., metavar="ID", help="message id or stream sequence (seq)"),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Delete one waiting message of a mailbox (by id or seq; one of another mailbox is refused)."""

    async def _do() -> None:
        async with await client(url, credentials, start=False) as ms:
            await ms.inspect(address).delete(_ref(ref))

    run(_do())  # MessageNotFound: one error line, exit 1
    if json_out:
        print_json({"address": address, "deleted": ref})
        return
    console.print(f"deleted {ref} from {address}")


async def search_agents(
    url: str | None, credentials: Path | None, text: str, *, limit: int, page: int
) -> list[dict[str, Any]]:
    async with await client(url, credentials, start=False) as ms:
        return [c.model_dump() for c in await ms.discover(text, limit=limit, page=page)]
