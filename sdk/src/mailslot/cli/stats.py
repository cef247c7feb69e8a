"""``mailslot stats`` (live numbers) and ``mailslot sidecar`` (run a sidecar replica).

``stats`` reads what the server knows directly (depths, waiting, dead letters, leases) and, when
a sidecar's metrics endpoint is known (``--metrics-url``, or the local broker's state), adds the
counters only a sidecar observes (delivered, expired, dead-lettered, reclaimed, reaper lag).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request
from pathlib import Path
from typing import Any

import typer
from mailslot_broker.home import mailslot_home, running_state
from mailslot_broker.sidecar import snapshot
from rich.console import Group
from rich.live import Live
from rich.table import Table

from .._boundary import boundary
from .app import CREDS_OPTION, JSON_OPTION, URL_OPTION, app, client, console, print_json, run

#: Sidecar metrics shown by ``stats`` (Prometheus name -> column label).
SIDECAR_COUNTERS = {
    "mailslot_messages_delivered_total": "delivered",
    "mailslot_messages_expired_total": "expired",
    "mailslot_messages_dead_lettered_total": "dead_lettered",
    "mailslot_messages_aged_total": "aged",
    "mailslot_leases_reclaimed_total": "leases_reclaimed",
    "mailslot_reaper_lag_seconds": "reaper_lag_s",
    "mailslot_sidecar_leader": "sidecar_leader",
}


def _scrape(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=3) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if not s.labels:
                out[s.name] = s.value
    return out


async def collect(ms: Any, *, top: int, metrics_url: str | None) -> dict[str, Any]:
    snap = await snapshot(ms.js, top=top)
    data: dict[str, Any] = {
        "at": time.time(),
        "waiting": snap.stored,
        "sent": snap.sent,
        "dead_letters": snap.dead_letters,
        "leases_active": snap.leases_active,
        "mailboxes_opened": snap.mailboxes_opened,
        "depth": snap.depth,
        "sidecar": None,
    }
    if metrics_url:
        try:
            scraped = await asyncio.to_thread(_scrape, metrics_url)
            data["sidecar"] = {label: scraped.get(name) for name, label in SIDECAR_COUNTERS.items()}
        except OSError as exc:
            data["sidecar"] = {"error": str(exc)}
    return data


def render(data: dict[str, Any]) -> Group:
    summary = Table("waiting", "sent", "dead letters", "leases", "mailboxes", title="mailslot")
    summary.add_row(
        str(data["waiting"]),
        str(data["sent"]),
        str(data["dead_letters"]),
        str(data["leases_active"]),
        str(data["mailboxes_opened"]),
    )
    depth = Table("mailbox", "critical", "urgent", "normal", "low", "total", title="deepest mailboxes")
    for address, per in data["depth"].items():
        depth.add_row(
            address,
            *(str(per.get(k, 0)) for k in ("critical", "urgent", "normal", "low")),
            str(sum(per.values())),
        )
    parts: list[Any] = [summary, depth]
    side = data.get("sidecar")
    if side:
        t = Table(*side.keys(), title="sidecar (observed since it started)")
        t.add_row(
            *("-" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in side.values())
        )
        parts.append(t)
    return Group(*parts)


@app.command()
def stats(
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    metrics_url: str | None = typer.Option(
        None, "--metrics-url", help="a sidecar's /metrics; default: the local broker's sidecar"
    ),
    top: int = typer.Option(10, "--top", help="how many mailboxes to list"),
    interval: float = typer.Option(2.0, "--interval", help="refresh period (live mode)"),
    once: bool = typer.Option(False, "--once", help="print once and exit"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Live table of mailbox depths, traffic, dead letters, leases and sidecar counters.
    Prints once when stdout is not a terminal (a pipe or a file)."""
    if metrics_url is None and url is None:
        state = running_state(mailslot_home(create=False))
        metrics_url = state.metrics_url if state else None
    once = once or not console.is_terminal

    async def _do() -> None:
        async with await client(url, credentials, start=False, provision=False) as ms:
            with boundary():  # streams nobody provisioned yet: one error line, no traceback
                data = await collect(ms, top=top, metrics_url=metrics_url)
            if json_out:
                print_json(data)
                return
            if once:
                console.print(render(data))
                return
            with Live(render(data), console=console, refresh_per_second=4) as live:
                while True:
                    await asyncio.sleep(interval)
                    live.update(render(await collect(ms, top=top, metrics_url=metrics_url)))

    with contextlib.suppress(KeyboardInterrupt):
        run(_do())


@app.command()
def sidecar(
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    http_host: str = typer.Option("127.0.0.1", "--http-host"),
    http_port: int = typer.Option(0, "--http-port", help="0 = any free port, -1 = no HTTP"),
    age_after: float | None = typer.Option(None, "--age-after", help="priority aging (seconds)"),
    sweep_interval: float = typer.Option(30.0, "--sweep-interval"),
    leader_ttl: float = typer.Option(5.0, "--leader-ttl"),
    unclaimed_keep: float | None = typer.Option(
        None,
        "--unclaimed-keep",
        help="seconds mail waits at an address nobody opened before it goes to dead letters "
        "(default: MAILSLOT_UNCLAIMED_KEEP or 7 days)",
    ),
) -> None:
    """Run a sidecar replica in the foreground (lease reaper, dead letters, aging, metrics)."""
    from mailslot_broker.local import ensure_local_broker
    from mailslot_broker.sidecar.__main__ import serve, unclaimed_keep_setting
    from mailslot_broker.sidecar.service import SidecarConfig

    if url is None:
        state = ensure_local_broker(with_sidecar=False)
        url, credentials = state.url, credentials or Path(state.credentials_path)
    cfg = SidecarConfig(
        url=url,
        credentials=credentials,
        http_host=http_host,
        http_port=None if http_port < 0 else http_port,
        age_after=age_after,
        sweep_interval=sweep_interval,
        leader_ttl=leader_ttl,
        unclaimed_keep=unclaimed_keep_setting(unclaimed_keep),
    )
    console.print(f"sidecar for {url}; Ctrl-C stops", highlight=False)
    asyncio.run(serve(cfg))
