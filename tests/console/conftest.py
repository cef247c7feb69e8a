"""Console fixtures: a real nats-server, ``mailslot console`` as a child process on a free
127.0.0.1 port (stopped by the fixture), and headless Debian Chromium driven by selenium with
the system chromedriver (selenium-manager never runs, nothing is downloaded)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mailslot import sync
from mailslot_broker import NatsServer
from testsupport import client_env

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install chromium chromium-driver"


@dataclass
class Console:
    url: str  # the printed URL, token included
    base: str  # http://127.0.0.1:PORT
    token: str


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The console's first stdout line (its URL), or fail with what it printed on stderr."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout else ""))
    reader.start()
    reader.join(timeout)
    if not box or not box[0]:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"mailslot console printed no URL within {timeout} s: {err}")
    return box[0]


def _console(server: NatsServer, *args: str) -> Iterator[Console]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailslot", "console", "--port", "0", *args],
        env=client_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = _first_line(proc, 30)
        m = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        assert m, line
        yield Console(url=m.group(0), base=m.group(1), token=m.group(2))
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 0, f"console exited {proc.returncode}: {err}"


@pytest.fixture
def console(server: NatsServer) -> Iterator[Console]:
    """``mailslot console`` on the test's server; stopped by SIGTERM, which must exit 0."""
    yield from _console(server)


@pytest.fixture
def tenant_console(server: NatsServer) -> Iterator[Console]:
    """The same with ``--tenant-login``: HTTP Basic with the tenant's credential works too."""
    yield from _console(server, "--tenant-login")


@pytest.fixture
def sms(server: NatsServer) -> Iterator[sync.SyncMailslot]:
    """A sync-twin client (selenium is blocking, so the tests are plain functions)."""
    with sync.connect(
        server.url, user=server.credentials.user, password=server.credentials.password, name="planner"
    ) as c:
        yield c


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium. Missing, it FAILS (never skips) and names the packages to install."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"the console tests need Chromium and its driver ({', '.join(missing)} missing): {INSTALL}"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
