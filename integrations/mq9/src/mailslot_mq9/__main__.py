"""``mailslot-mq9``: serve RobustMQ's mq9 protocol (``$mq9.AI.*``) on a Mailslot deployment
until interrupted. Start several: they share the work in one queue group and keep no state of
their own. One gateway serves one account (tenant): run one per tenant with its credentials."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

import mailslot

from .agents import DEFAULT_AGENT_TTL
from .gateway import DEFAULT_CONCURRENCY, Gateway
from .wire import QUEUE_GROUP


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.replace("``", "") if __doc__ else None)
    ap.add_argument("--url", default=None, help="broker URL (default $MAILSLOT_URL, else the local broker)")
    ap.add_argument(
        "--credentials", default=None, help="tenant credentials file (default $MAILSLOT_CREDENTIALS)"
    )
    ap.add_argument("--user", default=None, help="NATS user (instead of a credentials file)")
    ap.add_argument("--password", default=None, help="NATS password")
    ap.add_argument("--queue", default=QUEUE_GROUP, help=f"queue group of the replicas ({QUEUE_GROUP})")
    ap.add_argument(
        "--agent-ttl",
        type=float,
        default=DEFAULT_AGENT_TTL,
        help="seconds a registration lives without a REPORT (90)",
    )
    ap.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="requests served at once (256)"
    )
    ap.add_argument("--once", action="store_true", help="start, report, stop (a check of the setup)")
    return ap


async def _run(args: argparse.Namespace, prog: str) -> None:
    async with (
        mailslot.connect(
            args.url, credentials=args.credentials, user=args.user, password=args.password, name="mq9-gateway"
        ) as ms,
        Gateway(ms, queue=args.queue, agent_ttl=args.agent_ttl, concurrency=args.concurrency),
    ):
        print(
            f"{prog}: serving $mq9.AI.> on {ms.url} (queue group {args.queue})",
            file=sys.stderr,
            flush=True,
        )
        if not args.once:
            await asyncio.Event().wait()


def main(argv: list[str] | None = None, *, prog: str = "mailslot-mq9") -> None:
    args = _parser(prog).parse_args(argv)
    try:
        asyncio.run(_run(args, prog))
    except mailslot.MailslotError as exc:
        raise SystemExit(f"{prog}: {exc}") from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
