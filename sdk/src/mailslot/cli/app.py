"""The typer application every CLI module registers on, and shared helpers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import typer
from pydantic_core import to_jsonable_python
from rich.console import Console

from ..errors import MailslotError

T = TypeVar("T")

app = typer.Typer(
    name="mailslot",
    help="Durable, asynchronous mail for AI agents, on NATS JetStream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

URL_OPTION = typer.Option(None, "--url", envvar="MAILSLOT_URL", help="NATS URL; default: the local broker")
CREDS_OPTION = typer.Option(None, "--credentials", envvar="MAILSLOT_CREDENTIALS", help="credentials file")
JSON_OPTION = typer.Option(False, "--json", help="machine-readable output")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one CLI coroutine; Mailslot errors become a one-line message and exit code 1."""
    try:
        return asyncio.run(coro)
    except MailslotError as exc:
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable_python(data), indent=2, default=str) + "\n")
    sys.stdout.flush()


def main() -> None:
    app()
