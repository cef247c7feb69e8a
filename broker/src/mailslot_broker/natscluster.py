"""A JetStream cluster of nats-server nodes on loopback, for tests, demos and ``mailslot up
--cluster 3``.

Every node is a :class:`NatsServer` with its own workdir (so its own store dir), the same
accounts and system password, and a ``cluster {}`` block routing to every node. Every port is
reserved up front (:mod:`.ports`); a start that loses a port to a foreign process in the
instant before a node binds it is retried on fresh ports. Ports are kept across restarts of
a node.

:meth:`NatsCluster.start` returns only once JetStream has elected a meta leader, so a
client can create replicated streams straight away.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from .config import DEFAULT_TENANT, Credentials, TenantSpec
from .errors import ServerStartError
from .launcher import NatsServer
from .ports import PortReservation

_META_LEADER = re.compile(r"JetStream cluster new metadata leader: ([^/\s]+)/")
_SELF_LEADER = "Self is new JetStream cluster metadata leader"
IN_USE = "address already in use"
START_ATTEMPTS = 5


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
        mqtt: bool = False,
        websocket: bool = False,
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
                mqtt_port=0 if mqtt else None,  # each node its own listener, same accounts
                websocket_port=0 if websocket else None,
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
                    if self._fixed_ports or IN_USE not in str(exc) or self.start_attempts >= START_ATTEMPTS:
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
