"""The local cluster of ``mailslot up --cluster``, recorded in ``$MAILSLOT_HOME/cluster.json``
(0600: it holds what is needed to regenerate every node's config, passwords included), so
that ``mailslot status`` can find it and ``mailslot node stop|start`` can restart one node
with the same ports and store from another process.

The cluster itself is :class:`NatsCluster` (:mod:`.natscluster`), its port reservation is in
:mod:`.ports`; both are re-exported here, where callers have always imported them from.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from .errors import LauncherError, ServerStartError
from .home import read_model
from .launcher import pid_alive, terminate_pid
from .natscluster import IN_USE, START_ATTEMPTS, NatsCluster, cluster_block, route_port, start_node_server
from .ports import PortReservation, free_port
from .tenants import TenantRecord

__all__ = [
    "CLUSTER_CREDENTIALS_FILE",
    "CLUSTER_DIR",
    "CLUSTER_STATE_FILE",
    "START_ATTEMPTS",
    "ClusterState",
    "NatsCluster",
    "NodeRecord",
    "PortReservation",
    "cluster_block",
    "free_port",
    "read_cluster_state",
    "route_port",
    "running_cluster",
    "start_local_cluster",
    "start_node",
    "start_node_server",
    "stop_local_cluster",
    "stop_node",
    "supervising",
]

CLUSTER_STATE_FILE = "cluster.json"
CLUSTER_DIR = "cluster"
CLUSTER_CREDENTIALS_FILE = "cluster-credentials.json"


class NodeRecord(BaseModel):
    name: str
    pid: int | None
    url: str
    port: int
    route_port: int
    config_path: str
    #: Stopped on purpose (``mailslot node stop``): the supervisor waits for a ``node start``.
    stopped: bool = False
    #: The node's MQTT and WebSocket listener ports (``up --cluster N --mqtt --websocket``).
    mqtt_port: int | None = None
    websocket_port: int | None = None

    @property
    def alive(self) -> bool:
        return self.pid is not None and pid_alive(self.pid, marker=self.config_path)


class ClusterState(BaseModel):
    """What another process needs to find the local cluster and restart one of its nodes
    with the very same config."""

    name: str
    host: str
    workdir: str
    supervisor_pid: int
    credentials_path: str
    system_password: str
    tenants: list[TenantRecord]
    nodes: list[NodeRecord]
    started_at: datetime

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def alive(self) -> bool:
        return any(n.alive for n in self.nodes)

    def node(self, name: str) -> NodeRecord:
        """A node by server name (``mailslot-n2``) or short name (``n2``)."""
        for n in self.nodes:
            if name in (n.name, n.name.removeprefix(f"{self.name}-")):
                return n
        known = ", ".join(n.name.removeprefix(f"{self.name}-") for n in self.nodes)
        raise LauncherError(f"no node {name!r} in the local cluster (nodes: {known})")

    def cluster(self) -> NatsCluster:
        nodes = NatsCluster(
            self.workdir,
            size=len(self.nodes),
            name=self.name,
            host=self.host,
            tenants=[t.spec() for t in self.tenants],
            ports=[(n.port, n.route_port) for n in self.nodes],
            system_password=self.system_password,
        )
        for node, rec in zip(nodes.nodes, self.nodes, strict=True):
            node.config.mqtt_port, node.config.websocket_port = rec.mqtt_port, rec.websocket_port
        return nodes


@contextlib.contextmanager
def _cluster_locked(home: Path) -> Iterator[None]:
    """Serialises changes to cluster.json between the supervisor and ``mailslot node``."""
    with open(home / "cluster.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_cluster_state(home: Path) -> ClusterState | None:
    return read_model(home / CLUSTER_STATE_FILE, ClusterState)


def running_cluster(home: Path) -> ClusterState | None:
    """The local cluster's state if it is being supervised, or None."""
    state = read_cluster_state(home)
    if state is None or not pid_alive(state.supervisor_pid):
        return None
    return state


def _write_cluster_state(home: Path, state: ClusterState) -> None:
    tmp = home / (CLUSTER_STATE_FILE + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(state.model_dump_json(indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(home / CLUSTER_STATE_FILE)


def start_local_cluster(
    home: Path, size: int, *, timeout: float = 60.0, mqtt: bool = False, websocket: bool = False
) -> tuple[NatsCluster, ClusterState]:
    """Start the cluster of ``mailslot up --cluster`` as children of this process (its
    supervisor) and record it in cluster.json."""
    with _cluster_locked(home):
        current = running_cluster(home)
        if current is not None:
            raise LauncherError(
                f"a local cluster is already running (supervised by pid {current.supervisor_pid}); "
                "stop it first"
            )
        nodes = NatsCluster(home / CLUSTER_DIR, size=size, mqtt=mqtt, websocket=websocket)
        nodes.start(timeout=timeout)
        try:
            creds = nodes.credentials.write(home / CLUSTER_CREDENTIALS_FILE)
            state = ClusterState(
                name=nodes.name,
                host=nodes.host,
                workdir=str(nodes.workdir),
                supervisor_pid=os.getpid(),
                credentials_path=str(creds),
                system_password=nodes.system_password,
                tenants=[TenantRecord.from_spec(t) for t in nodes.tenants],
                nodes=[
                    NodeRecord(
                        name=n.config.server_name,
                        pid=n.pid,
                        url=n.url,
                        port=client,
                        route_port=route,
                        config_path=str(n.config_path),
                        mqtt_port=n.config.mqtt_port,
                        websocket_port=n.config.websocket_port,
                    )
                    for n, (client, route) in zip(nodes.nodes, nodes.ports, strict=True)
                ],
                started_at=datetime.now(timezone.utc),
            )
            _write_cluster_state(home, state)
        except BaseException:
            nodes.stop(grace=2.0)
            raise
        return nodes, state


def supervising(home: Path, nodes: NatsCluster) -> bool:
    """Whether the supervisor should keep going: some node is alive, or one was stopped on
    purpose and may be started again. Also reaps the supervisor's exited children."""
    for n in nodes.nodes:
        _ = n.running  # polls, so a node stopped by `mailslot node stop` does not stay a zombie
    state = read_cluster_state(home)
    if state is None or state.supervisor_pid != os.getpid():
        return False
    return any(n.alive or n.stopped for n in state.nodes)


def stop_local_cluster(home: Path, nodes: NatsCluster, *, grace: float = 10.0) -> None:
    """Stop every node, including those restarted by ``mailslot node start`` (no longer
    children of the supervisor: they are found by the pids in cluster.json)."""
    with _cluster_locked(home):
        state = read_cluster_state(home)
        mine = state is not None and state.supervisor_pid == os.getpid()
        if state is not None and mine:
            for rec in state.nodes:
                if rec.alive:
                    assert rec.pid is not None
                    terminate_pid(rec.pid, rec.config_path, grace)
        nodes.stop(grace=grace)
        if mine:
            (home / CLUSTER_STATE_FILE).unlink(missing_ok=True)


def _supervised(home: Path) -> ClusterState:
    state = running_cluster(home)
    if state is None:
        raise LauncherError("no local cluster is running; start one with `mailslot up --cluster 3`")
    return state


def stop_node(home: Path, name: str, *, grace: float = 10.0) -> NodeRecord:
    """Stop one node of the local cluster (SIGTERM, like a clean shutdown); the supervisor
    keeps the others running and waits for :func:`start_node`."""
    with _cluster_locked(home):
        state = _supervised(home)
        rec = state.node(name)
        if not rec.alive:
            raise LauncherError(f"node {rec.name} is not running")
        assert rec.pid is not None
        terminate_pid(rec.pid, rec.config_path, grace)
        rec.pid, rec.stopped = None, True
        _write_cluster_state(home, state)
        return rec


def start_node(home: Path, name: str, *, timeout: float = 60.0) -> NodeRecord:
    """Start one stopped node again with the same ports and store. It runs detached (this
    process is not its supervisor); the supervisor stops it with the others."""
    with _cluster_locked(home):
        state = _supervised(home)
        rec = state.node(name)
        if rec.alive:
            raise LauncherError(f"node {rec.name} is already running (pid {rec.pid})")
        node = state.cluster().node(rec.name)
        if str(node.config_path) != rec.config_path:
            raise LauncherError(f"node {rec.name}'s config is not at {rec.config_path}")
        try:
            start_node_server(node, detached=True, timeout=timeout)
        except ServerStartError as exc:
            if IN_USE in str(exc):
                raise LauncherError(
                    f"node {rec.name} cannot get its ports back (client {rec.port}, route "
                    f"{rec.route_port}): another process took one; stop it, or restart the "
                    "whole cluster"
                ) from exc
            raise
        rec.pid, rec.stopped = node.pid, False
        _write_cluster_state(home, state)
        return rec
