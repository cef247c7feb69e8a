"""``mailslot up``, ``down``, ``status``, ``node stop|start``: the local broker and the local cluster."""

from __future__ import annotations

import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer
from mailslot_broker import mailslot_home, running_state, stop_local_broker
from mailslot_broker.cluster import (
    ClusterState,
    running_cluster,
    start_local_cluster,
    start_node,
    stop_local_cluster,
    stop_node,
    supervising,
)
from mailslot_broker.errors import LauncherError
from mailslot_broker.local import (
    CREDENTIALS_FILE,
    STATE_FILE,
    Listeners,
    ensure_local_broker,
    read_endpoint,
    start_foreground_broker,
    stop_foreground_broker,
)
from rich.table import Table

from ..connection import connect
from ..errors import MailslotError
from . import _sidekicks
from .app import (
    CREDS_OPTION,
    JSON_OPTION,
    NO_BROKER,
    URL_OPTION,
    USAGE,
    app,
    console,
    fail,
    print_json,
    run,
    warn,
)


@app.command()
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="run in the background and return"),
    port: int = typer.Option(
        0, "--port", help="client port, kept for later starts (0 = the kept one, or a free one at first)"
    ),
    cluster: int = typer.Option(
        0, "--cluster", help="run an N-node JetStream cluster in the foreground (e.g. 3)"
    ),
    mqtt: bool = typer.Option(False, "--mqtt", help="also listen for MQTT 3.1.1 devices (same users)"),
    mqtt_port: int = typer.Option(0, "--mqtt-port", help="MQTT port, implies --mqtt (0 = any)"),
    websocket: bool = typer.Option(False, "--websocket", help="also listen for NATS over WebSocket (ws://)"),
    websocket_port: int = typer.Option(0, "--websocket-port", help="port, implies --websocket (0 = any)"),
    mq9: bool = typer.Option(False, "--mq9", help="also serve RobustMQ's mq9 protocol (needs mailslot-mq9)"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Start the local broker (nats-server with JetStream on 127.0.0.1)."""
    if mq9:
        _sidekicks.check_mq9(bool(cluster))
    mqtt, websocket = mqtt or bool(mqtt_port), websocket or bool(websocket_port)  # a port implies it
    listeners = Listeners(
        mqtt_port=mqtt_port if mqtt else None, websocket_port=websocket_port if websocket else None
    )
    if cluster:
        if detach:
            fail("--cluster runs in the foreground; drop --detach", USAGE)
        _up_cluster(cluster, json_out, mqtt=mqtt, websocket=websocket)
        return
    if detach:
        try:
            state = ensure_local_broker(port=port, listeners=listeners)
        except LauncherError as exc:
            fail(str(exc))
        run(_provision())  # so `status` shows the streams right away
        for kick in _wanted(mq9=mq9, mqtt=mqtt):
            _sidekicks.start_detached(kick, state, mailslot_home())
        if json_out:
            print_json(state.model_dump())
        else:
            console.print(f"local broker running at [bold]{state.url}[/bold] (pid {state.pid})")
            _print_listeners(state)
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # before the start: never orphan the server
    try:
        server, state = start_foreground_broker(port=port, listeners=listeners)
    except LauncherError as exc:
        fail(str(exc))
    children = []
    try:
        run(_provision())
        children = [_sidekicks.start(kick, state) for kick in _wanted(mq9=mq9, mqtt=mqtt)]
        if json_out:
            print_json(state.model_dump())
        else:
            console.print(
                f"local broker at [bold]{state.url}[/bold] (pid {state.pid}); "
                f"credentials in {state.credentials_path}; Ctrl-C stops"
            )
            _print_listeners(state)
        while not stop.is_set() and server.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            _sidekicks.stop(child)
        stop_foreground_broker(server, state)


def _wanted(*, mq9: bool, mqtt: bool) -> list[_sidekicks.Sidekick]:
    """``--mq9``: the gateway; ``--mqtt``: the bridge for the issued device logins."""
    return [kick for kick, on in ((_sidekicks.MQ9, mq9), (_sidekicks.DEVICES, mqtt)) if on]


def _print_listeners(state: Any) -> None:
    host = state.url.split("://", 1)[1].rsplit(":", 1)[0]
    if state.mqtt_port:
        console.print(f"MQTT devices: mqtt://{host}:{state.mqtt_port} (docs/deploy.md: MQTT devices)")
    if state.websocket_port:
        console.print(f"WebSocket: ws://{host}:{state.websocket_port}")


def _up_cluster(size: int, json_out: bool, *, mqtt: bool = False, websocket: bool = False) -> None:
    """A loopback JetStream cluster until Ctrl-C/SIGTERM; clients connect with every seed URL
    (``MAILSLOT_URL`` may list them comma-separated) and ``StreamSettings(replicas=3)``. This
    process supervises it: ``mailslot node stop|start`` restart single nodes meanwhile, and
    the nodes all stop with it."""
    home = mailslot_home()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # before the start: never orphan nodes
    try:
        nodes, state = start_local_cluster(home, size, mqtt=mqtt, websocket=websocket)
    except LauncherError as exc:
        fail(str(exc))
    try:
        urls = ",".join(state.urls)
        if json_out:
            print_json(
                {
                    "urls": state.urls,
                    "credentials": state.credentials_path,
                    "pids": [n.pid for n in state.nodes],
                    "nodes": [n.name for n in state.nodes],
                    "mqtt_ports": [n.mqtt_port for n in state.nodes if n.mqtt_port],
                    "websocket_ports": [n.websocket_port for n in state.nodes if n.websocket_port],
                }
            )
        else:
            console.print(
                f"{size}-node cluster; MAILSLOT_URL={urls} MAILSLOT_CREDENTIALS={state.credentials_path}; "
                "Ctrl-C stops"
            )
            for n in state.nodes:
                if n.mqtt_port or n.websocket_port:
                    console.print(f"{n.name}: MQTT port {n.mqtt_port}, WebSocket port {n.websocket_port}")
        while not stop.is_set() and supervising(home, nodes):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop_local_cluster(home, nodes)


node_app = typer.Typer(
    help="Nodes of the local cluster (`mailslot up --cluster N`): restart one, same ports and store.",
    rich_markup_mode="markdown",
    no_args_is_help=True,
)
app.add_typer(node_app, name="node")


def _node_action(action: Any, name: str, json_out: bool, said: Any) -> None:
    """Run ``stop_node``/``start_node`` and report it: one shape for both commands."""
    try:
        rec = action(mailslot_home(), name)
    except LauncherError as exc:
        fail(str(exc))
    if json_out:
        print_json(rec.model_dump())
    else:
        console.print(said(rec))


@node_app.command("stop")
def node_stop(
    name: str = typer.Argument(..., help="node name, e.g. n2 (or mailslot-n2)"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Stop one node cleanly; the others keep serving (a 3-node cluster has quorum with 2)."""
    _node_action(
        stop_node,
        name,
        json_out,
        lambda rec: f"node {rec.name} stopped; `mailslot node start {name}` brings it back",
    )


@node_app.command("start")
def node_start(
    name: str = typer.Argument(..., help="node name, e.g. n2 (or mailslot-n2)"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Start a stopped node again on its ports with its store; it rejoins and catches up."""
    _node_action(
        start_node,
        name,
        json_out,
        lambda rec: f"node {rec.name} running at [bold]{rec.url}[/bold] (pid {rec.pid})",
    )


@app.command()
def down() -> None:
    """Stop the local broker (its sidecar, and a detached mq9 gateway). Mail on disk is kept
    for the next `up`."""
    home = mailslot_home(create=False)
    if home.is_dir():
        for kick in _sidekicks.ALL:
            _sidekicks.stop_detached(kick, home)
    if stop_local_broker():
        console.print("local broker stopped")
    else:
        console.print("no local broker was running")


async def _provision() -> None:
    async with connect():
        pass


async def _status(url: str | None, credentials: Path | None) -> dict[str, Any]:
    home = mailslot_home(create=False)  # looking creates nothing
    info = await _local_status(home, url, credentials)
    cluster = running_cluster(home)
    if cluster is not None:
        info["cluster"] = await _cluster_status(cluster)
    return info


async def _local_status(home: Path, url: str | None, credentials: Path | None) -> dict[str, Any]:
    from mailslot_broker import protocol as p

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


async def _cluster_status(state: ClusterState) -> dict[str, Any]:
    """Nodes from cluster.json, and per stream where JetStream placed it: a stream with fewer
    replicas than nodes loses availability (or mail) with the node that holds it."""
    from mailslot_broker import protocol as p

    size = len(state.nodes)
    info: dict[str, Any] = {
        "name": state.name,
        "size": size,
        "supervisor_pid": state.supervisor_pid,
        "credentials": state.credentials_path,
        "urls": state.urls,
        "nodes": [
            {
                "name": n.name,
                "pid": n.pid if n.alive else None,
                "running": n.alive,
                "stopped": n.stopped,
                "url": n.url,
                "route_port": n.route_port,
            }
            for n in state.nodes
        ],
        "streams": {},
        "warnings": [],
    }
    warnings: list[str] = info["warnings"]
    down = [n.name for n in state.nodes if not n.alive]
    if down:
        warnings.append(f"node(s) not running: {', '.join(down)}")
    live = [n.url for n in state.nodes if n.alive]
    if not live:
        return info
    streams: dict[str, dict[str, Any] | None] = info["streams"]
    try:
        async with connect(live, credentials=state.credentials_path, provision_streams=False) as ms:
            for name in (p.MAIL_STREAM, p.TOPICS_STREAM, p.DLQ_STREAM, f"KV_{p.AGENTS_BUCKET}"):
                try:
                    si = await ms.js.stream_info(name)
                except Exception:
                    streams[name] = None
                    continue
                replicas = si.config.num_replicas or 1
                cl = si.cluster
                streams[name] = {
                    "replicas": replicas,
                    "leader": cl.leader if cl else None,
                    "peers": [
                        {
                            "name": r.name,
                            "current": bool(r.current),
                            "offline": bool(r.offline),
                            "lag": r.lag or 0,
                            "active_s": round((r.active or 0) / 1e9, 3),
                        }
                        for r in (cl.replicas or [] if cl else [])
                    ],
                    "messages": si.state.messages,
                }
                if replicas < size:
                    warnings.append(
                        f"stream {name} has {replicas} replica(s) on a {size}-node cluster: a node "
                        f"down takes it with it; provision with StreamSettings(replicas={size})"
                    )
    except MailslotError as exc:
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


@app.command()
def status(
    url: str | None = URL_OPTION,
    credentials: Path | None = CREDS_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Where the broker is, its version and uptime, and the streams with message counts.
    Exits 3 when no broker runs (with --json too), 0 otherwise."""
    info = run(_status(url, credentials))
    cluster = info.get("cluster")
    down = not info["running"] and cluster is None
    if json_out:
        print_json(info)
        if down:
            raise typer.Exit(NO_BROKER)
        return
    if not info["running"]:
        if cluster is None:
            console.print(f"no local broker running (home {info['home']}); start one with `mailslot up`")
            raise typer.Exit(NO_BROKER)
        console.print(f"no local broker running (home {info['home']})")
    else:
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
    if cluster is not None:
        _print_cluster(cluster)


def _peer_state(peer: dict[str, Any]) -> str:
    if peer["offline"]:
        return "offline"
    return "current" if peer["current"] else f"lag {peer['lag']}"


def _print_cluster(cluster: dict[str, Any]) -> None:
    console.print(
        f"[bold]cluster {cluster['name']}[/bold]: {cluster['size']} nodes, supervised by pid "
        f"{cluster['supervisor_pid']}; credentials {cluster['credentials']}"
    )
    nodes = Table("node", "pid", "state", "url")
    for n in cluster["nodes"]:
        state = "running" if n["running"] else ("stopped" if n["stopped"] else "dead")
        nodes.add_row(n["name"], str(n["pid"] or "-"), state, n["url"])
    console.print(nodes)
    streams = Table("stream", "replicas", "leader", "peers", "messages")
    for name, s in cluster["streams"].items():
        if s is None:
            streams.add_row(name, "-", "-", "-", "-")
            continue
        peers = ", ".join(f"{r['name']} ({_peer_state(r)})" for r in s["peers"])
        streams.add_row(name, str(s["replicas"]), s["leader"] or "-", peers or "-", str(s["messages"]))
    console.print(streams)
    if cluster.get("error"):
        warn(f"error: {cluster['error']}")
    for w in cluster["warnings"]:
        warn(w)
