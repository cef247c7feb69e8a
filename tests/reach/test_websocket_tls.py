"""``wss://``: the WebSocket listener with the broker's TLS certificate, and the SDK on it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import mailslot
import pytest
from mailslot_broker import NatsServer
from testsupport import ROOT, unique


def _pki() -> ModuleType:
    """The test CA of the TLS tests (tests/tenancy/test_tls.py), loaded by path."""
    spec = importlib.util.spec_from_file_location("reach_tls_pki", ROOT / "tests" / "tenancy" / "test_tls.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def wss_server(tmp_path: Path) -> Iterator[tuple[NatsServer, Path]]:
    pki = _pki().make_pki(tmp_path / "pki")
    srv = NatsServer(tmp_path / "nats", tls_cert=pki["cert"], tls_key=pki["key"], websocket_port=0)
    srv.start()
    try:
        yield srv, pki["ca"]
    finally:
        srv.stop()


async def test_sdk_over_wss(wss_server: tuple[NatsServer, Path]) -> None:
    srv, ca = wss_server
    assert srv.websocket_url.startswith("wss://")
    c = srv.credentials
    ms = await mailslot.connect(srv.websocket_url, user=c.user, password=c.password, tls_ca=ca)
    try:
        address = unique("wss-agent")
        mb = await ms.open(address)
        await ms.send(address, "over wss", priority="urgent")
        msg = await mb.receive(timeout=5)
        assert (msg.text(), msg.priority) == ("over wss", mailslot.Priority.URGENT)
        await msg.ack()
        await mb.destroy()
    finally:
        await ms.close()


async def test_wss_without_the_ca_is_refused(wss_server: tuple[NatsServer, Path]) -> None:
    srv, _ = wss_server
    c = srv.credentials
    with pytest.raises(mailslot.MailslotError):
        ms = await mailslot.connect(srv.websocket_url, user=c.user, password=c.password, timeout=2)
        await ms.close()
