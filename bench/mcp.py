"""7. The MCP server (``mailslot-mcp``) beside the SDK it is built on.

Two agents, each with its own ``mailslot-mcp`` spawned over stdio the way a coding agent's host
spawns it (``python -m mailslot_mcp``, ``MAILSLOT_AGENT`` in its environment), driven by the MCP
SDK's own client, on the bench's server:

- **send via MCP**: agent A's ``send`` tool call, start to result (JSON-RPC over the pipe, the
  tool, the SDK's ``send`` and the server's ack), vs the SDK's ``ms.send`` of the same body.
- **wait-for-mail wake latency via MCP**: agent B blocks in ``wait_for_mail`` (in place once
  its first progress notification arrived), A sends through MCP; from the start of A's send
  call to B's wait returning. vs the SDK: a task blocked in ``mailbox.receive()``, ``ms.send``
  -> ``receive`` returns. Each woken message is acked (outside the timing).

With ``.venv-mcp2`` present (``make sync``), the same two measurements run against the server on
mcp 2.x too (``.venv-mcp2/bin/python -m mailslot_mcp``), from the same mcp 1.30 client, so in
the handshake era (the 2026-07-28 era needs a 2.x client: its figures are in the member's
README, from ``tests/integrations/mcp/test_mcp2.py``).

Rounds alternate MCP and SDK; ratios (``mcp / sdk``, lower is better) are the median of the
round-by-round ratios of the per-round medians. Also reported: the number of tools and the
size of their definitions (``tools/list`` as JSON, as the member's tests measure it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from rich.console import Console

from ._common import Bench, median, paired_ratio, pct, unique

#: Samples per round (one send each), by scale: every sample is a tool call through a process.
SAMPLES = {"full": 60, "quick": 30, "smoke": 3}
#: The message body: 256 characters, like the other sections' payload.
BODY = "x" * 256
#: The server on mcp 2.x, when ``make sync`` built its environment.
MCP2_PYTHON = Path(__file__).resolve().parents[1] / ".venv-mcp2" / "bin" / "python"
#: After a wait reported that it is in place, before the send (the wait's pull is parked).
SETTLE = 0.05


@contextlib.asynccontextmanager
async def _agent(
    env: dict[str, str], agent: str, *, python: str = sys.executable
) -> AsyncIterator[ClientSession]:
    env = {**env, "MAILSLOT_AGENT": agent}
    if python != sys.executable:
        env.pop("VIRTUAL_ENV", None)
    params = StdioServerParameters(command=python, args=["-m", "mailslot_mcp"], env=env)
    async with stdio_client(params) as (r, w), ClientSession(r, w) as session:
        await session.initialize()
        yield session


async def _call(session: ClientSession, tool: str, **args: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, args)
    if result.isError or result.structuredContent is None:
        raise RuntimeError(f"{tool} failed: {result.content}")
    return result.structuredContent


async def _mcp_sends(a: ClientSession, to: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await _call(a, "send", to=to, body=BODY)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def _sdk_sends(b: Bench, to: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await b.ms.send(to, BODY)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def _drain_mcp(b_session: ClientSession) -> None:
    """Take and ack what the send rounds left in B's mailbox."""
    while True:
        mail = (await _call(b_session, "wait_for_mail", timeout=0, limit=100))["mail"]
        if not mail:
            return
        await _call(b_session, "ack", ids=[m["id"] for m in mail])


async def _mcp_wake(a: ClientSession, b_session: ClientSession, to: str) -> float:
    started = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    waiter = asyncio.ensure_future(
        b_session.call_tool("wait_for_mail", {"timeout": 20}, progress_callback=on_progress)
    )
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(SETTLE)
    t0 = time.perf_counter()
    await _call(a, "send", to=to, body=BODY)
    result = await waiter
    took = (time.perf_counter() - t0) * 1000
    mail = (result.structuredContent or {}).get("mail") or []
    if len(mail) != 1:
        raise RuntimeError(f"wait_for_mail returned {result.content}")
    await _call(b_session, "ack", ids=[mail[0]["id"]])
    return took


async def _sdk_wake(b: Bench, mailbox: Any) -> float:
    waiter = asyncio.ensure_future(mailbox.receive(timeout=20))
    await asyncio.sleep(SETTLE)
    t0 = time.perf_counter()
    await b.ms.send(mailbox.address, BODY)
    m = await waiter
    took = (time.perf_counter() - t0) * 1000
    await m.ack()
    return took


def _env(b: Bench, tmp: Path) -> dict[str, str]:
    creds = b.server.credentials.write(tmp / "credentials.json")
    env = {**os.environ, "MAILSLOT_URL": b.server.url, "MAILSLOT_CREDENTIALS": str(creds)}
    env.pop("MAILSLOT_AGENT", None)
    return env


async def run(b: Bench) -> dict[str, Any]:
    n = SAMPLES.get(b.scale.name, SAMPLES["quick"])
    lines = {"mcp": sys.executable}
    if MCP2_PYTHON.exists():
        lines["mcp2"] = str(MCP2_PYTHON)
    sdk_box = await b.ms.open(unique("bench-mcp-sdk"))
    send_to = unique("bench-mcp-sink")  # nobody reads it: purged after each send round
    names = ["sdk_send", "sdk_wake", *(f"{line}_{what}" for line in lines for what in ("send", "wake"))]
    rounds: dict[str, list[float]] = {k: [] for k in names}
    samples: dict[str, list[float]] = {k: [] for k in rounds}
    with tempfile.TemporaryDirectory(prefix="mailslot-bench-mcp-") as tmp:
        env = _env(b, Path(tmp))
        async with contextlib.AsyncExitStack() as stack:
            pairs: dict[str, tuple[ClientSession, ClientSession, str]] = {}
            for line, python in lines.items():
                alice, bob = unique(f"bench-{line}-a"), unique(f"bench-{line}-b")
                a = await stack.enter_async_context(_agent(env, alice, python=python))
                bs = await stack.enter_async_context(_agent(env, bob, python=python))
                pairs[line] = (a, bs, bob)
            tools = (await pairs["mcp"][0].list_tools()).tools
            size = len(
                json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools])
            )
            # Warm-up: first calls open connections and subscriptions on every side.
            for a, bs, bob in pairs.values():
                await _mcp_sends(a, send_to, 3)
                await _mcp_wake(a, bs, bob)
            await _sdk_sends(b, send_to, 3)
            await _sdk_wake(b, sdk_box)
            await b.purge(send_to)
            for _ in range(b.scale.repeat):
                measures: list[tuple[str, Any]] = []
                for line, (a, bs, bob) in pairs.items():
                    measures.append((f"{line}_send", functools.partial(_mcp_sends, a, send_to, n)))
                    measures.append((f"{line}_wake", functools.partial(_gather, n, _mcp_wake, a, bs, bob)))
                measures.append(("sdk_send", functools.partial(_sdk_sends, b, send_to, n)))
                measures.append(("sdk_wake", functools.partial(_gather, n, _sdk_wake, b, sdk_box)))
                for name, measure in measures:
                    xs = await measure()
                    samples[name] += xs
                    rounds[name].append(median(xs))
                await b.purge(send_to)
            for _, bs, _ in pairs.values():
                await _drain_mcp(bs)
    await sdk_box.destroy()
    out: dict[str, Any] = {
        "samples_per_round": n,
        "tools": len(tools),
        "tool_definitions_chars": size,
        "rounds": rounds,
        "sdk_send_p50_ms": median(samples["sdk_send"]),
        "sdk_send_p99_ms": pct(samples["sdk_send"], 99),
        "sdk_wake_p50_ms": median(samples["sdk_wake"]),
        "sdk_wake_p99_ms": pct(samples["sdk_wake"], 99),
    }
    for line in lines:  # "mcp": the server on mcp 1.x, "mcp2": on mcp 2.x
        for what in ("send", "wake"):
            xs = samples[f"{line}_{what}"]
            out[f"{line}_{what}_p50_ms"] = median(xs)
            out[f"{line}_{what}_p99_ms"] = pct(xs, 99)
            out[f"{what}_{line}_vs_sdk_ratio"] = paired_ratio(rounds[f"{line}_{what}"], rounds[f"sdk_{what}"])
    _show(out)
    return out


async def _gather(n: int, one: Any, *args: Any) -> list[float]:
    return [await one(*args) for _ in range(n)]


def _show(r: dict[str, Any]) -> None:
    """The section's rows (p50 over every sample; ratio as in the module doc), on stderr with
    the progress log: the main table is ``report.py``'s."""
    console = Console(stderr=True)
    console.print(
        f"send via MCP (vs SDK send): {r['mcp_send_p50_ms']:.2f} ms vs {r['sdk_send_p50_ms']:.2f} ms "
        f"p50, ratio {r['send_mcp_vs_sdk_ratio']:.3g}\n"
        f"wait-for-mail wake latency via MCP (vs SDK receive): {r['mcp_wake_p50_ms']:.2f} ms vs "
        f"{r['sdk_wake_p50_ms']:.2f} ms p50 (p99 {r['mcp_wake_p99_ms']:.1f} vs "
        f"{r['sdk_wake_p99_ms']:.1f}), ratio {r['wake_mcp_vs_sdk_ratio']:.3g}\n"
        f"{r['tools']} tools, definitions {r['tool_definitions_chars']} characters"
    )
    if "mcp2_send_p50_ms" in r:
        console.print(
            f"server on mcp 2.x (handshake era): send via MCP {r['mcp2_send_p50_ms']:.2f} ms p50, ratio "
            f"{r['send_mcp2_vs_sdk_ratio']:.3g}; wake {r['mcp2_wake_p50_ms']:.2f} ms p50 (p99 "
            f"{r['mcp2_wake_p99_ms']:.1f}), ratio {r['wake_mcp2_vs_sdk_ratio']:.3g}"
        )
