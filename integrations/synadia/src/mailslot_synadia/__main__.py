"""``mailslot-synadia bridge`` (also ``mailslot synadia bridge ...``): run the bridge between
Mailslot mailboxes and the Synadia Agent Protocol until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

import mailslot
from mailslot.natsio import NatsClient
from synadia_ai.agents import Identity, signer_from_seed

from . import naming as n
from .bridge import Bridge


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.replace("``", "") if __doc__ else None)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("bridge", help="expose Mailslot agents as protocol agents and the reverse")
    run.add_argument("--url", default=None, help="broker URL (default $MAILSLOT_URL, else the local broker)")
    run.add_argument("--credentials", default=None, help="credentials file (default $MAILSLOT_CREDENTIALS)")
    run.add_argument("--owner", default=n.DEFAULT_OWNER, help=f"protocol owner token ({n.DEFAULT_OWNER})")
    run.add_argument("--agent", default=n.DEFAULT_AGENT, help=f"protocol agent token ({n.DEFAULT_AGENT})")
    run.add_argument(
        "--wait-online", type=float, default=300.0, help="seconds a caller waits for an agent (300)"
    )
    run.add_argument("--heartbeat", type=int, default=30, help="heartbeat interval, seconds (30)")
    run.add_argument("--signed-only", action="store_true", help="refuse prompts without a verified sender")
    run.add_argument("--no-expose", action="store_true", help="do not expose Mailslot agents")
    run.add_argument("--no-reach", action="store_true", help="do not deliver mail to protocol agents")
    run.add_argument(
        "--nkey-seed",
        default=None,
        metavar="FILE",
        help="the seed of the bridge's NKEY user: the protocol side logs in with it, signs its "
        "prompts (Agent-Sender) and its mail with it (a voucher once the operator grants it sap.>)",
    )
    run.add_argument("--once", action="store_true", help="start, report, stop (a check of the setup)")
    return ap


async def _run(args: argparse.Namespace, prog: str) -> None:
    async with mailslot.connect(args.url, credentials=args.credentials, name="synadia-bridge") as ms:
        nc: NatsClient | None = None
        seed: str | None = args.seed
        identity: Identity | None = None
        if seed is not None:  # one key for the bridge in both worlds
            nc = NatsClient()
            await nc.connect(ms.url, nkeys_seed_str=seed, name="synadia-bridge", connect_timeout=10)
            identity = Identity(signer=signer_from_seed(seed))
        bridge = Bridge(
            ms,
            nc,
            owner=args.owner,
            agent=args.agent,
            wait_online=args.wait_online,
            heartbeat_interval=args.heartbeat,
            min_sender_trust="signed" if args.signed_only else "any",
            expose=not args.no_expose,
            reach=not args.no_reach,
            identity=identity,
            signing_seed=seed,
        )
        try:
            async with bridge:
                print(
                    f"{prog}: Mailslot agents on agents.prompt.{args.agent}.{args.owner}.<address>; "
                    f"protocol agents by mail at {n.REACH_PREFIX}.<agent>.<owner>.<name>",
                    file=sys.stderr,
                    flush=True,
                )
                if not args.once:
                    await asyncio.Event().wait()
        finally:
            if nc is not None:
                await nc.close()


def main(argv: list[str] | None = None, *, prog: str = "mailslot-synadia") -> None:
    args = _parser(prog).parse_args(argv)
    try:
        args.seed = Path(args.nkey_seed).read_text().strip() if args.nkey_seed else None
    except OSError as exc:
        raise SystemExit(f"{prog}: --nkey-seed: {exc}") from None
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(_run(args, prog))
        except mailslot.MailslotError as exc:  # e.g. the broker is unreachable: one line, exit 1
            raise SystemExit(f"{prog}: {type(exc).__name__}: {exc}") from None


if __name__ == "__main__":
    main()
