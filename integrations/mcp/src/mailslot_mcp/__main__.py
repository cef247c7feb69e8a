"""``mailslot-mcp``: stdio by default (one agent, from ``MAILSLOT_AGENT``), or
``--http HOST:PORT`` for streamable HTTP (agents from a bearer-token file)."""

from __future__ import annotations

import argparse
import os
import sys

import anyio
import mailslot

from .hub import Hub
from .identity import ENV_TOKENS, TokenStore, agent_from_env
from .server import DEFAULT_IDLE, DEFAULT_MAX_WAIT, card_from_env, serve_http, serve_stdio


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__)
    ap.add_argument("--http", metavar="HOST:PORT", help="serve streamable HTTP at /mcp instead of stdio")
    ap.add_argument(
        "--tokens",
        metavar="FILE",
        default=os.environ.get(ENV_TOKENS),
        help=f'HTTP: JSON file of agent -> bearer token(s) (default ${ENV_TOKENS}), e.g. {{"alice": "..."}}',
    )
    ap.add_argument("--url", default=None, help="broker URL (default $MAILSLOT_URL, else the local broker)")
    ap.add_argument("--credentials", default=None, help="credentials file (default $MAILSLOT_CREDENTIALS)")
    ap.add_argument(
        "--max-wait", type=float, default=DEFAULT_MAX_WAIT, help="longest blocking wait, seconds (50)"
    )
    ap.add_argument(
        "--ack-wait",
        type=float,
        default=600.0,
        help="seconds a received, unacked message stays with the agent before redelivery (600)",
    )
    ap.add_argument(
        "--lease-ttl",
        type=float,
        default=None,
        help="seconds the agent stays online after the server stops renewing its lease (SDK default 60)",
    )
    ap.add_argument(
        "--idle",
        type=float,
        default=DEFAULT_IDLE,
        help="HTTP: close an agent's mailbox (drop its lease) after this many quiet seconds (900)",
    )
    return ap


def main(argv: list[str] | None = None, *, prog: str = "mailslot-mcp") -> None:
    """The console script; also ``mailslot mcp`` of the SDK's CLI (``prog`` names it in help
    and errors)."""
    args = _parser(prog).parse_args(argv)
    hub = Hub(
        url=args.url,
        credentials=args.credentials,
        ack_wait=args.ack_wait,
        lease_ttl=args.lease_ttl,
        card=card_from_env(),
    )
    try:
        if args.http:
            host, _, port = args.http.rpartition(":")
            if not host or not port.isdigit():
                raise SystemExit(f"{prog}: --http takes HOST:PORT, e.g. 127.0.0.1:8765")
            if not args.tokens:
                raise SystemExit(f"{prog}: --http needs --tokens FILE (or ${ENV_TOKENS})")
            tokens = TokenStore.read(args.tokens)
            anyio.run(
                lambda: serve_http(
                    hub, tokens, host=host, port=int(port), max_wait=args.max_wait, idle=args.idle
                )
            )
        else:
            agent = agent_from_env()
            anyio.run(lambda: serve_stdio(hub, agent, max_wait=args.max_wait))
    except mailslot.MailslotError as exc:
        print(f"{prog}: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
