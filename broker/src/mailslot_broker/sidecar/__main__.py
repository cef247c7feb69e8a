"""``python -m mailslot_broker.sidecar``: run one sidecar replica in the foreground.

Prints one JSON line (pid, replica id, metrics and health URLs) on stdout once it is serving,
and writes the same to ``--ready-file`` if given, so a parent process can find it. The module
path is also the marker ``stop_local_broker`` looks for in the command line before it signals.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from .. import protocol as p
from .service import Sidecar, SidecarConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m mailslot_broker.sidecar")
    ap.add_argument("--url", default=os.environ.get("MAILSLOT_URL"), required=False)
    ap.add_argument("--credentials", default=os.environ.get("MAILSLOT_CREDENTIALS"))
    ap.add_argument("--http-host", default="127.0.0.1")
    ap.add_argument("--http-port", type=int, default=0, help="0 = any free port, -1 = no HTTP")
    ap.add_argument("--age-after", type=float, default=None, help="priority aging (seconds)")
    ap.add_argument("--sweep-interval", type=float, default=30.0)
    ap.add_argument("--leader-ttl", type=float, default=5.0)
    ap.add_argument("--metrics-interval", type=float, default=5.0)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument(
        "--unclaimed-keep",
        type=float,
        default=None,
        help="seconds mail waits at an address nobody opened before it goes to dead letters "
        "(default: MAILSLOT_UNCLAIMED_KEEP or 7 days); applies to this sidecar's tenant",
    )
    ap.add_argument("--replica-id", default=None)
    ap.add_argument("--exit-with-pid", type=int, default=None)
    ap.add_argument("--ready-file", default=None)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    if not args.url:
        ap.error("--url (or MAILSLOT_URL) is required")
    return args


def config_from_args(args: argparse.Namespace) -> SidecarConfig:
    return SidecarConfig(
        url=args.url,
        credentials=args.credentials,
        http_host=args.http_host,
        http_port=None if args.http_port < 0 else args.http_port,
        age_after=args.age_after,
        sweep_interval=args.sweep_interval,
        leader_ttl=args.leader_ttl,
        metrics_interval=args.metrics_interval,
        top=args.top,
        unclaimed_keep=unclaimed_keep_setting(args.unclaimed_keep),
        replica_id=args.replica_id,
        exit_with_pid=args.exit_with_pid,
    )


def unclaimed_keep_setting(value: float | None) -> float:
    if value is None:
        env = os.environ.get("MAILSLOT_UNCLAIMED_KEEP")
        value = float(env) if env else p.DEFAULT_UNCLAIMED_KEEP
    if not 0 < value <= p.MAX_KEEP:
        raise SystemExit(f"--unclaimed-keep must be in (0, {p.MAX_KEEP:g}] seconds, got {value:g}")
    return value


def _write_ready(path: str, line: str) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_text(line)
    tmp.replace(path)


async def serve(config: SidecarConfig, *, ready_file: str | None = None) -> None:
    sidecar = Sidecar(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(sidecar.stop()))
    await sidecar.start()
    line = json.dumps(sidecar.info())
    if ready_file:
        _write_ready(ready_file, line)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    try:
        await sidecar.run_forever()
    finally:
        await sidecar.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(serve(config_from_args(args), ready_file=args.ready_file))


if __name__ == "__main__":
    main()
