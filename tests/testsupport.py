"""Plain helpers for tests (importable as ``testsupport``; conftest modules are not)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from mailslot_broker import NatsServer, TenantSpec
from mailslot_broker import protocol as p
from mailslot_broker.config import Permissions
from nats.js.api import AckPolicy, ConsumerConfig

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def client_env(server: NatsServer) -> dict[str, str]:
    """Environment for a child process that should use ``server``."""
    creds = server.workdir / "client-credentials.json"
    server.credentials.write(creds)
    env = dict(os.environ)
    env["MAILSLOT_URL"] = server.url
    env["MAILSLOT_CREDENTIALS"] = str(creds)
    env["COLUMNS"] = "200"  # CLI tables (rich) shorten cells in a narrow non-terminal
    env["PYTHONPATH"] = str(ROOT / "tests") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def login(server: NatsServer) -> dict[str, str]:
    """``mailslot.connect`` keywords for the server's own tenant user."""
    c = server.credentials
    return {"user": c.user, "password": c.password}


@contextlib.asynccontextmanager
async def restricted_client(
    tmp_path: Path, tenant: str, *, publish_deny: Iterable[str] = (), subscribe_deny: Iterable[str] = ()
) -> AsyncIterator[Any]:
    """A Mailslot client of a tenant whose user is also denied these subjects, on a fresh
    server of its own (the default set denies ``$SYS.>`` both ways)."""
    import mailslot

    perms = Permissions()
    perms.publish_deny += list(publish_deny)
    perms.subscribe_deny += list(subscribe_deny)
    spec = TenantSpec.generate(tenant, permissions=perms)
    with NatsServer(tmp_path / "nats", tenants=[spec]) as srv:
        creds = spec.credentials.write(tmp_path / f"{tenant.lower()}.json")
        async with mailslot.connect(srv.url, credentials=creds) as ms:
            yield ms


def unique(name: str) -> str:
    """``name`` with a random suffix: an address (or topic token) that no other test uses, for
    tests on the session's shared server (``shared_server`` / ``shared_ms`` in conftest)."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


async def wait_for(
    cond: Callable[[], Awaitable[Any] | Any], *, timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll ``cond`` (a plain or async callable) until it returns something truthy, and return
    that; fail with a clear message after ``timeout``. For state that settles in the background
    (a sidecar's sweep, a reconnect) and has no event to await."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def run_notebook(path: Path, cwd: Path, *, timeout: int = 240) -> str:
    """Execute the notebook at ``path`` in a fresh kernel (working directory ``cwd``) and
    return the text its code cells printed, for the test to check. Kernel "python3" is
    ipykernel's built-in spec: jupyter_client runs it with this interpreter."""
    import nbformat  # imported here: only the notebook tests need them
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def run_example(
    path: Path, cwd: Path, *, drop: Iterable[str] = (), timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the example script at ``path`` as a user would (``python path``, from ``cwd``),
    without the environment variables in ``drop`` (e.g. ``MAILSLOT_URL``, so that it starts
    its own broker); its output is captured for the test to check."""
    env = {k: v for k, v in os.environ.items() if k not in set(drop)}
    return subprocess.run(
        [PYTHON, str(path)], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


async def squat(ms: Any, address: str) -> None:
    """Another consumer (``squat-<address>``) on the address's low level, and mail at its
    normal and low levels: an open binds the levels holding mail, so the server refuses its
    low consumer after the record, the lease and the normal consumer were written."""
    await ms.send(address, "squatted normal", priority="normal")
    await ms.send(address, "squatted low", priority="low")
    await ms.js.add_consumer(
        p.MAIL_STREAM,
        ConsumerConfig(
            name=f"squat-{address}",
            durable_name=f"squat-{address}",
            filter_subject=p.mail_subject(p.Priority.LOW, address),
            ack_policy=AckPolicy.EXPLICIT,
        ),
    )


def run_procs(*argv: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m procs argv...`` (tests/procs.py: an agent in a process of its own), run to
    its end, output captured."""
    return subprocess.run(
        [PYTHON, "-m", "procs", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT / "tests",
    )


def start_procs(*argv: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``python -m procs argv...`` started, its stdout and stderr piped; the caller ends it."""
    return subprocess.Popen(
        [PYTHON, "-m", "procs", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT / "tests",
    )


def mailslot_cli(
    *args: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m mailslot args...`` in a child process, with ``env`` (default: this process's,
    which holds the test's isolated MAILSLOT_HOME); with ``check`` a failure raises, showing
    its output."""
    r = subprocess.run(
        [PYTHON, "-m", "mailslot", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ) if env is None else env,
    )
    if check and r.returncode != 0:
        raise AssertionError(f"mailslot {' '.join(args)} failed: {r.stdout}\n{r.stderr}")
    return r


async def assert_round_trip(ms: Any, address: str, text: str, *, timeout: float = 5) -> None:
    """Mail to ``address`` (opened, then closed) arrives as sent and is acked."""
    mb = await ms.open(address, ttl=30)
    await ms.send(address, text)
    m = await mb.receive(timeout=timeout)
    assert m.text() == text
    await m.ack()
    await mb.close()
