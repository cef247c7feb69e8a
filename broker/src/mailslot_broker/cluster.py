"""A JetStream cluster of nats-server nodes on loopback, for tests, demos and ``mailslot up
--cluster 3``.

Every node is a :class:`NatsServer` with its own workdir (so its own store dir), the same
accounts and system password, and a ``cluster {}`` block routing to every node. Route ports
must be known before any node starts, so they are picked free up front; client ports are
chosen by each server (port 0) and learned from its log, then kept across restarts.
:meth:`NatsCluster.start` returns only once JetStream has elected a meta leader, so a
client can create replicated streams straight away.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from .config import DEFAULT_TENANT, Credentials, TenantSpec
from .errors import ServerStartError
from .launcher import NatsServer

_META_LEADER = re.compile(r"JetStream cluster new metadata leader: ([^/\s]+)/")
_SELF_LEADER = "Self is new JetStream cluster metadata leader"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def cluster_block(name: str, host: str, port: int, routes: list[int]) -> str:
    """The ``cluster {}`` section of one node's config."""
    urls = ", ".join(f'"nats-route://{host}:{p}"' for p in routes)
    return f'cluster {{ name: "{name}", listen: "{host}:{port}", routes: [ {urls} ] }}'


class NatsCluster:
    """``size`` nats-server nodes forming one JetStream cluster named ``name``."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        size: int = 3,
        name: str = "mailslot",
        host: str = "127.0.0.1",
        tenants: list[TenantSpec] | None = None,
        binary: Path | str | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.workdir = Path(workdir)
        self.name = name
        self.tenants = tenants if tenants is not None else [TenantSpec.generate(DEFAULT_TENANT)]
        route_ports = [free_port(host) for _ in range(size)]
        first: NatsServer | None = None
        self.nodes: list[NatsServer] = []
        for i, rport in enumerate(route_ports):
            node = NatsServer(
                self.workdir / f"n{i + 1}",
                host=host,
                tenants=self.tenants,  # one list, shared: add_tenant on the cluster updates all
                binary=binary,
                server_name=f"{name}-n{i + 1}",
                cluster=cluster_block(name, host, rport, route_ports),
                system_password=first.config.system_password if first else None,
            )
            first = first or node
            self.nodes.append(node)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """Seed URLs of every node, for ``mailslot.connect(cluster.urls, ...)``."""
        return [n.url for n in self.nodes]

    @property
    def credentials(self) -> Credentials:
        return self.tenants[0].credentials

    def node(self, server_name: str) -> NatsServer:
        for n in self.nodes:
            if n.config.server_name == server_name:
                return n
        raise KeyError(server_name)

    def start(self, *, timeout: float = 60.0) -> NatsCluster:
        """Start every node, then wait until JetStream has a meta leader."""
        offsets = {id(n): _log_size(n) for n in self.nodes}
        try:
            for n in self.nodes:
                n.start(timeout=timeout)
            self.wait_for_meta_leader(offsets=offsets, timeout=timeout)
        except BaseException:
            self.stop(grace=2.0)
            raise
        return self

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


def _log_size(n: NatsServer) -> int:
    return n.log_path.stat().st_size if n.log_path.exists() else 0
