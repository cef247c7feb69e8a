"""The typer application every CLI module registers on, and shared helpers.

Exit codes (the same for every command, listed in ``mailslot --help`` and docs/operate.md):
``0`` done, ``1`` an error (refused, not found, failed), ``2`` bad usage (options,
arguments), ``3`` no broker (none running locally, or nothing answers at the URL), ``4``
timed out (``ask`` got no reply in time).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.text import Text

from .. import __version__
from ..client import Mailslot
from ..connection import connect
from ..errors import BrokerUnreachable, MailslotError, Timeout

T = TypeVar("T")

OK, ERROR, USAGE, NO_BROKER, TIMED_OUT = 0, 1, 2, 3, 4

EXIT_CODES = "Exit codes: 0 done, 1 error, 2 bad usage, 3 no broker, 4 timed out."

app = typer.Typer(
    name="mailslot",
    help=f"Durable, asynchronous mail for AI agents, on NATS JetStream.\n\n{EXIT_CODES}",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # `code` in help renders as code, not as literal backticks
)
console = Console()
err_console = Console(stderr=True)

URL_OPTION = typer.Option(None, "--url", envvar="MAILSLOT_URL", help="NATS URL; default: the local broker")
CREDS_OPTION = typer.Option(None, "--credentials", envvar="MAILSLOT_CREDENTIALS", help="credentials file")
JSON_OPTION = typer.Option(False, "--json", help="machine-readable output")


class NoBroker(MailslotError):
    """A read-only command found no local broker running (it does not start one)."""


def fail(message: str, code: int = ERROR) -> NoReturn:
    """One ``error:`` line on stderr, never hard-wrapped (a terminal wraps it, a log keeps it
    whole), then exit with ``code``."""
    err_console.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err_console.print(Text.assemble(("warning:", "yellow"), " ", message), soft_wrap=True, highlight=False)


def exit_code(exc: MailslotError) -> int:
    if isinstance(exc, (NoBroker, BrokerUnreachable)):
        return NO_BROKER
    if isinstance(exc, Timeout):
        return TIMED_OUT
    return ERROR


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one CLI coroutine; a Mailslot error becomes one ``error:`` line and its exit code."""
    try:
        return asyncio.run(coro)
    except MailslotError as exc:
        prefix = "" if isinstance(exc, NoBroker) else f"{type(exc).__name__}: "
        fail(f"{prefix}{exc}", exit_code(exc))


async def client(
    url: str | None,
    credentials: Path | None,
    *,
    start: bool = True,
    provision: bool = True,
    name: str | None = None,
) -> Mailslot:
    """A connected client. Without a URL it uses the local broker, started if need be when
    ``start`` (commands that send or change something); a read-only command (``start=False``)
    raises :class:`NoBroker` instead, so looking creates nothing on this machine. Streams are
    provisioned as by any client unless ``provision=False`` (``stats`` only reads)."""
    if url is None and not start:
        from mailslot_broker.home import mailslot_home, running_state

        state = running_state(mailslot_home(create=False))
        if state is None:
            raise NoBroker("no local broker running; start one with `mailslot up` or give --url")
        url, credentials = state.url, credentials or Path(state.credentials_path)
    return await connect(url, credentials=credentials, name=name, provision_streams=provision)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable_python(data), indent=2, default=str) + "\n")
    sys.stdout.flush()


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"mailslot {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    pass  # the options above are the whole root; the commands are registered by the modules


def main() -> None:
    app()
