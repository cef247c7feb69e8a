"""A JetStream cluster of nats-server nodes on loopback, for tests, demos and ``mailslot up
--cluster 3``.

Every node is a :class:`NatsServer` with its own workdir (so its own store dir), the same
accounts and system password, and a ``cluster {}`` block routing to every node. Route ports
must be known before any node starts, and a port picked and released can be handed by the
kernel to the next listener that asks for "any port" (another node's client port, in the
old code): so every port of every node, client and route, is reserved at once by holding a
bound socket on it, and each node's pair is released only just before that node starts. A
foreign process can still grab a released port in that instant; a start that loses a port
that way is retried on fresh ports. Ports are kept across restarts of a node.

:meth:`NatsCluster.start` returns only once JetStream has elected a meta leader, so a
client can create replicated streams straight away.

The cluster ``mailslot up --cluster`` runs is recorded in ``$MAILSLOT_HOME/cluster.json``
(0600: it holds what is needed to regenerate every node's config, passwords included), so
that ``mailslot status`` can find it and ``mailslot node stop|start`` can restart one node
with the same ports and store from another process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from .config import DEFAULT_TENANT, Credentials, TenantSpec
from .errors import LauncherError, ServerStartError
from .launcher import NatsServer, pid_alive, terminate_pid
from .tenants import TenantRecord

_META_LEADER = re.compile(r"JetStream cluster new metadata leader: ([^/\s]+)/")
_SELF_LEADER = "Self is new JetStream cluster metadata leader"
_IN_USE = "address already in use"
START_ATTEMPTS = 5

CLUSTER_STATE_FILE = "cluster.json"
CLUSTER_DIR = "cluster"
CLUSTER_CREDENTIALS_FILE = "cluster-credentials.json"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick for port 0). Racy once
    released: prefer :class:`PortReservation` when several ports are needed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class PortReservation:
    """``count`` distinct free ports, each held by a bound (not listening) socket until
    released. While held, the kernel gives the port to no one else; a bound socket that does
    not listen refuses connections, so nodes already up see a closed port, as before."""

    def __init__(self, host: str, count: int) -> None:
        self._socks: dict[int, socket.socket] = {}
        try:
            while len(self._socks) < count:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind((host, 0))
                self._socks[int(s.getsockname()[1])] = s
        except BaseException:
            self.close()
            raise
        self.ports = list(self._socks)

    def release(self, *ports: int) -> None:
        for p in ports:
            s = self._socks.pop(p, None)
            if s is not None:
                s.close()

    def close(self) -> None:
        self.release(*list(self._socks))


def cluster_block(name: str, host: str, port: int, routes: list[int]) -> str:
    """The ``cluster {}`` section of one node's config."""
    urls = ", ".join(f'"nats-route://{host}:{p}"' for p in routes)
    return f'cluster {{ name: "{name}", listen: "{host}:{port}", routes: [ {urls} ] }}'


class NatsCluster:
    """``size`` nats-server nodes forming one JetStream cluster named ``name``.

    ``ports`` (one ``(client, route)`` pair per node) and ``system_password`` recreate the
    configuration of an existing cluster, e.g. to restart one node from another process.
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        size: int = 3,
        name: str = "mailslot",
        host: str = "127.0.0.1",
        tenants: list[TenantSpec] | None = None,
        binary: Path | str | None = None,
        ports: list[tuple[int, int]] | None = None,
        system_password: str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        if ports is not None and len(ports) != size:
            raise ValueError(f"{len(ports)} port pairs for {size} nodes")
        self.workdir = Path(workdir)
        self.name = name
        self.host = host
        self.tenants = tenants if tenants is not None else [TenantSpec.generate(DEFAULT_TENANT)]
        #: How many tries the last :meth:`start` needed (more than 1: a port was taken).
        self.start_attempts = 0
        self._reservation: PortReservation | None = None
        self.nodes: list[NatsServer] = []
        for i in range(size):
            node = NatsServer(
                self.workdir / f"n{i + 1}",
                host=host,
                tenants=self.tenants,  # one list, shared: add_tenant on the cluster updates all
                binary=binary,
                server_name=f"{name}-n{i + 1}",
                system_password=system_password or (self.nodes[0].config.system_password if i else None),
            )
            self.nodes.append(node)
        self._fixed_ports = ports is not None
        self._assign(ports if ports is not None else self._reserve())

    def _reserve(self) -> list[tuple[int, int]]:
        if self._reservation is not None:
            self._reservation.close()
        self._reservation = PortReservation(self.host, 2 * len(self.nodes))
        ports = self._reservation.ports
        return list(zip(ports[::2], ports[1::2], strict=True))

    def _assign(self, ports: list[tuple[int, int]]) -> None:
        routes = [r for _, r in ports]
        for node, (client, route) in zip(self.nodes, ports, strict=True):
            node.config.port = client
            node.port = None  # not started on these ports yet
            node.config.cluster = cluster_block(self.name, self.host, route, routes)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def ports(self) -> list[tuple[int, int]]:
        """``(client, route)`` per node."""
        return [(n.port or n.config.port, route_port(n)) for n in self.nodes]

    @property
    def urls(self) -> list[str]:
        """Seed URLs of every node, for ``mailslot.connect(cluster.urls, ...)``."""
        return [n.url for n in self.nodes]

    @property
    def credentials(self) -> Credentials:
        return self.tenants[0].credentials

    @property
    def system_password(self) -> str:
        return self.nodes[0].config.system_password

    def node(self, server_name: str) -> NatsServer:
        for n in self.nodes:
            if n.config.server_name == server_name:
                return n
        raise KeyError(server_name)

    def start(self, *, timeout: float = 60.0) -> NatsCluster:
        """Start every node, then wait until JetStream has a meta leader."""
        self.start_attempts = 0
        # A store created by a failed attempt holds a Raft state naming peers that were never
        # complete; a retry starts from scratch (election takes seconds otherwise). Stores
        # that existed before are real data and stay.
        fresh = [n.config.store_dir for n in self.nodes if not n.config.store_dir.exists()]
        try:
            while True:
                self.start_attempts += 1
                try:
                    self._start_once(timeout)
                    return self
                except ServerStartError as exc:
                    if self._fixed_ports or _IN_USE not in str(exc) or self.start_attempts >= START_ATTEMPTS:
                        raise
                    self.stop(grace=2.0)
                    for store in fresh:
                        shutil.rmtree(store, ignore_errors=True)
                    self._assign(self._reserve())
        except BaseException:
            self.stop(grace=2.0)
            raise
        finally:
            if self._reservation is not None:
                self._reservation.close()
                self._reservation = None

    def _start_once(self, timeout: float) -> None:
        offsets = {id(n): _log_size(n) for n in self.nodes}
        for n in self.nodes:
            if self._reservation is not None:
                self._reservation.release(n.config.port, route_port(n))
            start_node_server(n, timeout=timeout)
        self.wait_for_meta_leader(offsets=offsets, timeout=timeout)

    def wait_for_meta_leader(self, *, offsets: dict[int, int] | None = None, timeout: float = 60.0) -> str:
        """Block until some node's log (after ``offsets``) names a JetStream meta leader;
        returns its server name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in self.nodes:
                text = n._read_log((offsets or {}).get(id(n), 0))
                if _SELF_LEADER in text:
                    return n.config.server_name
                m = _META_LEADER.search(text)
                if m:
                    return m.group(1)
            for n in self.nodes:
                if n.pid is not None and not n.running:
                    raise ServerStartError(f"cluster node {n.config.server_name} died:\n{n.log_tail()}")
            time.sleep(0.05)
        raise ServerStartError(f"no JetStream meta leader after {timeout:.0f} s")

    def add_tenant(self, spec: TenantSpec) -> TenantSpec:
        """Add an account on every node (reloading the running ones)."""
        self.tenants[:] = [t for t in self.tenants if t.name != spec.name]
        self.tenants.append(spec)
        for n in self.nodes:
            if n.running:
                n.reload()
        return spec

    def stop(self, *, grace: float = 10.0) -> None:
        for n in self.nodes:
            n.stop(grace=grace)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_ROUTE_PORT = re.compile(r'listen: "[^"]*:(\d+)"')
_ROUTE_LISTENING = "Listening for route connections on"
_ROUTE_FAILED = re.compile(r"\[FTL\].*route.*", re.I)


def start_node_server(n: NatsServer, *, detached: bool = False, timeout: float = 60.0) -> None:
    """Start one node and wait for its route listener too: nats-server says it is ready
    before it binds the route port, so a taken route port shows only afterwards."""
    offset = _log_size(n)
    n.start(detached=detached, timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        text = n._read_log(offset)
        if _ROUTE_LISTENING in text:
            return
        if not n.running or _ROUTE_FAILED.search(text):
            n.stop(grace=1.0)
            raise ServerStartError(
                f"cluster node {n.config.server_name} failed to listen for routes:\n{n.log_tail()}"
            )
        if time.monotonic() > deadline:
            n.stop(grace=1.0)
            raise ServerStartError(f"cluster node {n.config.server_name} never listened for routes")
        time.sleep(0.01)


def route_port(n: NatsServer) -> int:
    m = _ROUTE_PORT.search(n.config.cluster)
    if m is None:
        raise ValueError(f"{n.config.server_name} has no cluster listen port")
    return int(m.group(1))


def _log_size(n: NatsServer) -> int:
    return n.log_path.stat().st_size if n.log_path.exists() else 0


# -- the local cluster of `mailslot up --cluster` ----------------------------------------------


class NodeRecord(BaseModel):
    name: str
    pid: int | None
    url: str
    port: int
    route_port: int
    config_path: str
    #: Stopped on purpose (``mailslot node stop``): the supervisor waits for a ``node start``.
    stopped: bool = False

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
        return NatsCluster(
            self.workdir,
            size=len(self.nodes),
            name=self.name,
            host=self.host,
            tenants=[t.spec() for t in self.tenants],
            ports=[(n.port, n.route_port) for n in self.nodes],
            system_password=self.system_password,
        )


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
    try:
        return ClusterState.model_validate_json((home / CLUSTER_STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


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


def start_local_cluster(home: Path, size: int, *, timeout: float = 60.0) -> tuple[NatsCluster, ClusterState]:
    """Start the cluster of ``mailslot up --cluster`` as children of this process (its
    supervisor) and record it in cluster.json."""
    with _cluster_locked(home):
        current = running_cluster(home)
        if current is not None:
            raise LauncherError(
                f"a local cluster is already running (supervised by pid {current.supervisor_pid}); "
                "stop it first"
            )
        nodes = NatsCluster(home / CLUSTER_DIR, size=size)
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
            if _IN_USE in str(exc):
                raise LauncherError(
                    f"node {rec.name} cannot get its ports back (client {rec.port}, route "
                    f"{rec.route_port}): another process took one; stop it, or restart the "
                    "whole cluster"
                ) from exc
            raise
        rec.pid, rec.stopped = node.pid, False
        _write_cluster_state(home, state)
        return rec
