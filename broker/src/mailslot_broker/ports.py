"""Ports for a cluster's nodes, reserved before any node starts.

Route ports must be known before any node starts, and a port picked and released can be
handed by the kernel to the next listener that asks for "any port" (another node's client
port, in the old code): so every port of every node, client and route, is reserved at once
by holding a bound socket on it, and each node's pair is released only just before that node
starts. A foreign process can still grab a released port in that instant; the cluster then
retries on fresh ports (:meth:`NatsCluster.start`).
"""

from __future__ import annotations

import socket


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
