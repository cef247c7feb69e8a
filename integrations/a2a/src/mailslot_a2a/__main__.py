"""``mailslot-a2a serve --http HOST:PORT`` (also ``mailslot a2a serve ...``): the A2A HTTP
front for every agent registered in Mailslot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

import mailslot

from .front import DEFAULT_NAME, serve_http
from .store import NAMESPACE


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve A2A JSON-RPC over HTTP for the agents in the registry")
    serve.add_argument(
        "--http", metavar="HOST:PORT", required=True, help="where to listen, e.g. 127.0.0.1:8770"
    )
    serve.add_argument(
        "--url", default=None, help="broker URL (default $MAILSLOT_URL, else the local broker)"
    )
    serve.add_argument(
        "--credentials",
        default=None,
        help="credentials file (default $MAILSLOT_CREDENTIALS); a tenant credential: an agent "
        "credential may not use the state store the tasks live in",
    )
    serve.add_argument("--name", default=DEFAULT_NAME, help=f"the front's requester name ({DEFAULT_NAME})")
    serve.add_argument("--namespace", default=NAMESPACE, help=f"state namespace of the tasks ({NAMESPACE})")
    return ap


async def _serve(args: argparse.Namespace, host: str, port: int) -> None:
    async with mailslot.connect(args.url, credentials=args.credentials, name=args.name) as ms:
        print(f"A2A front on http://{host}:{port}/agents/<address>", file=sys.stderr, flush=True)
        await serve_http(ms, host=host, port=port, name=args.name, namespace=args.namespace)


def main(argv: list[str] | None = None, *, prog: str = "mailslot-a2a") -> None:
    args = _parser(prog).parse_args(argv)
    host, _, port = args.http.rpartition(":")
    if not (host and port.isdigit()):
        raise SystemExit(f"{prog}: --http takes HOST:PORT, e.g. 127.0.0.1:8770")
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(_serve(args, host, int(port)))
        except mailslot.MailslotError as exc:  # e.g. the broker is unreachable: one line, exit 1
            raise SystemExit(f"{prog}: {_public_name(exc)}: {exc}") from None


def _public_name(exc: mailslot.MailslotError) -> str:
    """The error's name in ``mailslot``'s public tree (``PermissionDenied``, not the SDK's
    internal subclass of it)."""
    for cls in type(exc).__mro__:
        if getattr(mailslot, cls.__name__, None) is cls:
            return cls.__name__
    return type(exc).__name__


if __name__ == "__main__":
    main()
