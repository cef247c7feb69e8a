"""``python -m bench [--quick|--smoke] [--only send,receive,...] [--profile]``.

Starts a private nats-server, runs each benchmark (Mailslot and raw nats-py interleaved on the
same server), prints the table and writes ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ._common import SCALES, bench_env
from .report import print_table, ratios, write_json

SECTIONS = (
    "send",
    "receive",
    "latency",
    "priority",
    "lifecycle",
    "idle",
    "mcp",
    "audit",
    "tracing",
    "signing",
)
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


async def main(args: argparse.Namespace) -> dict[str, Any]:
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    scale = SCALES[mode]
    if args.repeat:
        scale = type(scale)(**{**scale.__dict__, "repeat": args.repeat})
    only = [s.strip() for s in args.only.split(",")] if args.only else list(SECTIONS)
    console = Console(stderr=True)
    started = time.monotonic()
    async with bench_env(scale) as b:
        results: dict[str, Any] = {
            "meta": {
                "mode": mode,
                "repeat": scale.repeat,
                "server_version": b.server.version,
                "python": platform.python_version(),
                "machine": f"{platform.machine()} x{__import__('os').cpu_count()}",
                "payload_bytes": 256,
            }
        }
        for name in only:
            if name not in SECTIONS:
                raise SystemExit(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")
            mod = importlib.import_module(f"bench.{name}")
            console.log(f"[bold]{name}[/] ...")
            t0 = time.monotonic()
            if args.profile:
                from pyinstrument import Profiler

                prof = Profiler(async_mode="enabled")
                with prof:
                    results[name] = await mod.run(b)
                out = Path(tempfile.gettempdir()) / f"mailslot-bench-profile-{name}.txt"
                out.write_text(prof.output_text(unicode=False, color=False, show_all=False))
                console.log(f"profile written to {out}")
            else:
                results[name] = await mod.run(b)
            console.log(f"{name} done in {time.monotonic() - t0:.1f} s")
    results["meta"]["elapsed_s"] = round(time.monotonic() - started, 1)
    results["ratios"] = ratios({k: v for k, v in results.items() if k != "meta"})
    out_console = Console()
    if not out_console.is_terminal:
        out_console = Console(width=150)
    print_table(results, out_console)
    write_json(results, Path(args.out))
    console.log(f"wrote {args.out} ({results['meta']['elapsed_s']} s)")
    return results


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smaller runs, about three minutes")
    g.add_argument("--smoke", action="store_true", help="tiny runs that only check it works")
    ap.add_argument("--only", help=f"comma-separated subset of: {','.join(SECTIONS)}")
    ap.add_argument("--repeat", type=int, help="rounds per comparison (medians are reported)")
    ap.add_argument("--out", default=str(RESULTS), help="where to write the JSON")
    ap.add_argument("--profile", action="store_true", help="pyinstrument each section (slower)")
    return ap.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
