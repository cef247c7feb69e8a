"""Cluster start-up never races its own ports: every client and route port of every node is
reserved at once, and a port a foreign process takes in the instant before a node binds it
costs a retry on fresh ports, not a failed start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from mailslot_broker.cluster import NatsCluster
from mailslot_broker.ports import PortReservation


def test_reserved_ports_are_distinct_and_held() -> None:
    r = PortReservation("127.0.0.1", 6)
    try:
        assert len(set(r.ports)) == 6
        for port in r.ports:
            with socket.socket() as s, pytest.raises(OSError):
                s.bind(("127.0.0.1", port))
        r.release(r.ports[0])
        with socket.socket() as s:
            s.bind(("127.0.0.1", r.ports[0]))
    finally:
        r.close()


@pytest.mark.slow
def test_cluster_starts_20_times_in_a_row_without_a_port_clash(tmp_path: Path) -> None:
    for i in range(20):
        c = NatsCluster(tmp_path / f"c{i}", size=3)
        try:
            c.start(timeout=30)
            assert c.start_attempts == 1, f"start {i} needed {c.start_attempts} attempts"
            ports = [p for pair in c.ports for p in pair]
            assert len(set(ports)) == 6
            assert all(n.running for n in c.nodes)
            for n, (client, route) in zip(c.nodes, c.ports, strict=True):
                log = n.log_tail(200)
                assert f"127.0.0.1:{client}" in log and f"127.0.0.1:{route}" in log
        finally:
            c.stop(grace=5.0)
        assert not any(n.running for n in c.nodes)


def test_a_port_taken_before_its_node_binds_it_is_retried(tmp_path: Path) -> None:
    c = NatsCluster(tmp_path / "c", size=3)
    _, route = c.ports[2]
    # Play the foreign process: take the last node's route port between reservation and start.
    assert c._reservation is not None
    c._reservation.release(route)
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", route))
    squatter.listen()
    try:
        c.start(timeout=30)
        assert c.start_attempts == 2
        assert route not in [p for pair in c.ports for p in pair]
        assert all(n.running for n in c.nodes)
    finally:
        c.stop(grace=5.0)
        squatter.close()
