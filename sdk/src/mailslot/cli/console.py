"""``mailslot console``: the web console (:mod:`mailslot.cli.webconsole`), from the shell.

Its web parts (starlette, sse-starlette, uvicorn: the ``mailslot[console]`` extra) are
imported only when the command runs, so the rest of the CLI does not need them.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from .app import CREDS_OPTION, URL_OPTION, app, client, fail, run

#: The modules the extra provides (a missing one is named with the install line).
_WEB = ("starlette", "sse_starlette", "uvicorn")


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again for the
    handler it found: a no-op one here, so a stop by Ctrl-C or SIGTERM exits 0, not by it."""
    stops = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.signal(sig, lambda *_: None) for sig in stops}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _tenant_login(credentials: Path | None, url: str | None) -> tuple[str, str]:
    """The user and password of the Mailslot credentials file the console connected with."""
    from mailslot_broker.config import Credentials
    from mailslot_broker.home import mailslot_home, running_state

    if credentials is None and url is None:
        state = running_state(mailslot_home(create=False))
        credentials = Path(state.credentials_path) if state is not None else None
    if credentials is None or credentials.suffix == ".creds":
        fail("--tenant-login needs a Mailslot credentials file (JSON with user and password)")
    try:
        creds = Credentials.read(credentials)
    except (OSError, ValueError) as exc:
        fail(f"--tenant-login cannot read {credentials}: {exc}")
    return creds.user, creds.password


@app.command()
def console(
    port: int = typer.Option(8470, "--port", help="port to listen on (0: any free port)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (keep it local)"),
    token: str | None = typer.Option(
        None, "--token", envvar="MAILSLOT_CONSOLE_TOKEN", help="the page's secret; default: a new one"
    ),
    tenant_login: bool = typer.Option(
        False, "--tenant-login", help="also let in HTTP Basic with the tenant's user and password"
    ),
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
) -> None:
    """A local web page: mailboxes, agents, dead letters (requeue, purge), a live tail of mail
    and broadcasts, threads. Prints its URL with the token once; Ctrl-C stops it."""
    try:
        from .webconsole import serve
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _WEB:
            raise
        fail(f"`mailslot console` needs {exc.name} (pip install 'mailslot[console]')")
    secret = token or secrets.token_urlsafe(24)

    def ready(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        sys.stdout.write(f"Mailslot console: http://{shown}:{bound_port}/?token={secret}\n")
        sys.stdout.flush()

    async def _do() -> None:
        async with await client(url, credentials, start=False, name="console") as ms:
            login = _tenant_login(credentials, url) if tenant_login else None
            await serve(ms, host=host, port=port, secrets=[secret], login=login, ready=ready)

    with _stopped_by_signals():
        run(_do())
