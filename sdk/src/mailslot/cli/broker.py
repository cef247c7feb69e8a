"""``mailslot up``, ``down``, ``status``: the local broker."""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer
from mailslot_broker import NatsServer, mailslot_home, running_state, stop_local_broker
from mailslot_broker.local import ensure_local_broker
from rich.table import Table

from ..connection import connect
from .app import CREDS_OPTION, JSON_OPTION, URL_OPTION, app, console, print_json, run


@app.command()
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="run in the background and return"),
    port: int = typer.Option(0, "--port", help="client port (0 = any free port)"),
    cluster: int = typer.Option(
        0, "--cluster", help="run an N-node JetStream cluster in the foreground (e.g. 3)"
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Start the local broker (nats-server with JetStream on 127.0.0.1)."""
    if cluster:
        if detach:
            console.print("--cluster runs in the foreground; drop --detach")
            raise typer.Exit(2)
        _up_cluster(cluster, json_out)
        return
    if detach:
        state = ensure_local_broker(port=port)
        run(_provision())  # so `status` shows the streams right away
        if json_out:
            print_json(state.model_dump())
        else:
            console.print(f"local broker running at [bold]{state.url}[/bold] (pid {state.pid})")
        return
    home = mailslot_home()
    if running_state(home) is not None:
        console.print("a detached local broker is already running; use `mailslot down` first")
        raise typer.Exit(1)
    server = NatsServer(home / "foreground", port=port, server_name="mailslot-foreground")
    server.start()
    creds = server.credentials.write(home / "foreground-credentials.json")
    console.print(f"broker at [bold]{server.url}[/bold]; credentials in {creds}; Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _up_cluster(size: int, json_out: bool) -> None:
    """A loopback JetStream cluster until Ctrl-C/SIGTERM; clients connect with every seed URL
    (``MAILSLOT_URL`` may list them comma-separated) and ``StreamSettings(replicas=3)``."""
    from mailslot_broker.cluster import NatsCluster

    home = mailslot_home()
    nodes = NatsCluster(home / "cluster", size=size)
    nodes.start()
    creds = nodes.credentials.write(home / "cluster-credentials.json")
    urls = ",".join(nodes.urls)
    if json_out:
        print_json({"urls": nodes.urls, "credentials": str(creds), "pids": [n.pid for n in nodes.nodes]})
    else:
        console.print(f"{size}-node cluster; MAILSLOT_URL={urls} MAILSLOT_CREDENTIALS={creds}; Ctrl-C stops")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and any(n.running for n in nodes.nodes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        nodes.stop()


@app.command()
def down() -> None:
    """Stop the local broker (and its sidecar). Mail on disk is kept for the next `up`."""
    if stop_local_broker():
        console.print("local broker stopped")
    else:
        console.print("no local broker was running")


async def _provision() -> None:
    async with connect():
        pass


async def _status(url: str | None, credentials: Path | None) -> dict[str, Any]:
    from mailslot_broker import protocol as p

    state = running_state()
    if url is None and state is None:
        return {"running": False, "home": str(mailslot_home())}
    async with connect(url, credentials=credentials, provision_streams=False) as ms:
        info: dict[str, Any] = {
            "running": True,
            "url": ms.url,
            "server_version": ms.server_version,
            "home": str(mailslot_home()),
        }
        if state is not None and url is None:
            info["pid"] = state.pid
            info["uptime_s"] = round((datetime.now(timezone.utc) - state.started_at).total_seconds(), 1)
            info["metrics_url"] = state.metrics_url
            info["health_url"] = state.health_url
        streams: dict[str, dict[str, int] | None] = {}
        for name in (p.MAIL_STREAM, p.TOPICS_STREAM, p.DLQ_STREAM):
            try:
                si = await ms.js.stream_info(name)
                streams[name] = {
                    "messages": si.state.messages,
                    "bytes": si.state.bytes,
                    "consumers": si.state.consumer_count,
                }
            except Exception:
                streams[name] = None
        info["streams"] = streams
        return info


@app.command()
def status(
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Where the broker is, its version and uptime, and the streams with message counts."""
    info = run(_status(url, credentials))
    if json_out:
        print_json(info)
        return
    if not info["running"]:
        console.print(f"no local broker running (home {info['home']}); start one with `mailslot up`")
        raise typer.Exit(3)
    console.print(f"[bold]{info['url']}[/bold]  nats-server {info['server_version']}")
    if "uptime_s" in info:
        console.print(f"pid {info['pid']}, up {info['uptime_s']:.0f} s")
    table = Table("stream", "messages", "bytes", "consumers")
    for name, s in info["streams"].items():
        if s is None:
            table.add_row(name, "-", "-", "-")
        else:
            table.add_row(name, str(s["messages"]), str(s["bytes"]), str(s["consumers"]))
    console.print(table)
