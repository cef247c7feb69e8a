"""``mailslot up``, ``down``, ``status``: the local broker."""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer
from mailslot_broker import mailslot_home, running_state, stop_local_broker
from mailslot_broker.errors import LauncherError
from mailslot_broker.local import (
    CREDENTIALS_FILE,
    STATE_FILE,
    ensure_local_broker,
    read_endpoint,
    start_foreground_broker,
    stop_foreground_broker,
)
from rich.table import Table

from ..connection import connect
from .app import CREDS_OPTION, JSON_OPTION, URL_OPTION, app, console, err_console, print_json, run


@app.command()
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="run in the background and return"),
    port: int = typer.Option(
        0, "--port", help="client port, kept for later starts (0 = the kept one, or a free one at first)"
    ),
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
        try:
            state = ensure_local_broker(port=port)
        except LauncherError as exc:
            err_console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        run(_provision())  # so `status` shows the streams right away
        if json_out:
            print_json(state.model_dump())
        else:
            console.print(f"local broker running at [bold]{state.url}[/bold] (pid {state.pid})")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # before the start: never orphan the server
    try:
        server, state = start_foreground_broker(port=port)
    except LauncherError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    try:
        run(_provision())
        if json_out:
            print_json(state.model_dump())
        else:
            console.print(
                f"local broker at [bold]{state.url}[/bold] (pid {state.pid}); "
                f"credentials in {state.credentials_path}; Ctrl-C stops"
            )
        while not stop.is_set() and server.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop_foreground_broker(server, state)


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

    home = mailslot_home()
    state = running_state(home) if url is None else None
    if url is None and state is None:
        kept = read_endpoint(home)
        creds_file = home / CREDENTIALS_FILE
        # Where the broker will be once started: the port and credentials are kept.
        return {
            "running": False,
            "home": str(home),
            "url": kept.url if kept else None,
            "credentials": str(creds_file) if creds_file.exists() else None,
        }
    if state is not None:
        url, credentials = state.url, credentials or Path(state.credentials_path)
    async with connect(url, credentials=credentials, provision_streams=False) as ms:
        info: dict[str, Any] = {
            "running": True,
            "url": ms.url,
            "credentials": str(credentials) if credentials else None,
            "server_version": ms.server_version,
            "home": str(home),
        }
        if state is not None:
            info["mode"] = state.mode
            info["pid"] = state.pid
            info["state_file"] = str(home / STATE_FILE)
            info["uptime_s"] = round((datetime.now(timezone.utc) - state.started_at).total_seconds(), 1)
            info["sidecar_pid"] = state.sidecar_pid
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
        console.print(f"{info['mode']}, pid {info['pid']}, up {info['uptime_s']:.0f} s")
    if info.get("credentials"):
        console.print(f"credentials {info['credentials']}")
    table = Table("stream", "messages", "bytes", "consumers")
    for name, s in info["streams"].items():
        if s is None:
            table.add_row(name, "-", "-", "-")
        else:
            table.add_row(name, str(s["messages"]), str(s["bytes"]), str(s["consumers"]))
    console.print(table)
