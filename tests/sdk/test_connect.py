import socket
import time

import mailslot
import pytest
from mailslot_broker import NatsServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_url():
    with pytest.raises(mailslot.BrokerUnreachable):
        await mailslot.connect(f"nats://127.0.0.1:{_free_port()}", user="u", password="p", timeout=1)


async def test_bad_credentials(shared_server):
    with pytest.raises(mailslot.AuthenticationFailed):
        await mailslot.connect(shared_server.url, user=shared_server.credentials.user, password="wrong")


async def test_missing_credentials_file(shared_server, tmp_path):
    with pytest.raises(mailslot.AuthenticationFailed):
        await mailslot.connect(shared_server.url, credentials=tmp_path / "nope.json")


async def test_jetstream_off(tmp_path):
    with NatsServer(tmp_path, jetstream=False) as srv:
        c = srv.credentials
        with pytest.raises(mailslot.JetStreamUnavailable):
            await mailslot.connect(srv.url, user=c.user, password=c.password)


async def test_credentials_file_and_env(shared_server, tmp_path, monkeypatch):
    path = shared_server.credentials.write(tmp_path / "creds.json")
    monkeypatch.setenv("MAILSLOT_URL", shared_server.url)
    monkeypatch.setenv("MAILSLOT_CREDENTIALS", str(path))
    async with mailslot.connect() as ms:
        assert ms.url == shared_server.url
        assert ms.server_version.startswith("2.")
        assert ms.tenant == "MAILSLOT"


async def test_embedded_default_cold_and_warm(_isolated_home):
    from mailslot_broker import stop_local_broker

    try:
        t0 = time.perf_counter()
        async with mailslot.connect() as ms:
            cold = time.perf_counter() - t0
            await ms.send("nobody", "x")
        t0 = time.perf_counter()
        async with mailslot.connect() as ms:
            warm = time.perf_counter() - t0
            assert (await ms.inspect("nobody").stats()).total == 1
        assert warm < cold + 1.0
    finally:
        assert stop_local_broker(_isolated_home)


async def test_closed_client_refuses(shared_ms):
    await shared_ms.close()
    with pytest.raises(mailslot.NotConnected):
        await shared_ms.send("a", "b")
