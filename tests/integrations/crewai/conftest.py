"""CrewAI test setup: offline, no telemetry, nothing written under the real HOME.

CrewAI reads its telemetry/tracing/version-check switches and writes ``~/.config/crewai``
and a ``secret.key`` when it is first imported, which for this directory is collection
time. So the switches are set and crewai is imported here, under a throwaway HOME, before
any test module imports it; every test then also runs with the switches and its own HOME.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from mailslot import sync
from mailslot_broker import NatsServer
from testsupport import PYTHON, ROOT, client_env

__all__ = ["CREWAI_OFFLINE", "PYTHON", "ROOT", "client_env"]

CREWAI_OFFLINE = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
}

for _k, _v in CREWAI_OFFLINE.items():
    os.environ.setdefault(_k, _v)
_import_home = tempfile.mkdtemp(prefix="crewai-import-home-")
atexit.register(shutil.rmtree, _import_home, True)
with pytest.MonkeyPatch.context() as _mp, warnings.catch_warnings():
    _mp.setenv("HOME", _import_home)
    # crewai's lazy submodule loading trips an ImportWarning that the suite's
    # "warnings are errors" would turn into a failed import.
    warnings.simplefilter("ignore", ImportWarning)
    import crewai  # noqa: F401
    import mailslot_crewai  # noqa: F401


@pytest.fixture(autouse=True)
def _crewai_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for k, v in CREWAI_OFFLINE.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    yield home


@pytest.fixture
def sms(server: NatsServer) -> Iterator[sync.SyncMailslot]:
    """A sync-twin client of the test's server (CrewAI tools and workers are sync)."""
    c = server.credentials
    client = sync.connect(server.url, user=c.user, password=c.password, name="crew")
    try:
        yield client
    finally:
        client.close()
