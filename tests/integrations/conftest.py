"""Fixtures shared by the integration tests: a sidecar on the test's nats-server, and probes
of a mailbox's lifecycle (presence, retention) for the absence tests.

``make_sidecar`` is the sidecar tests' own fixture (``tests/sidecar/conftest.py``), imported
rather than copied so both suites start sidecars the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mailslot
import pytest
from mailslot_broker import protocol as p
from mailslot_broker.sidecar import Sidecar
from nats.js import errors as jserr
from sidecar.conftest import leader_of, make_sidecar
from testsupport import wait_for

__all__ = ["Lifecycle", "make_sidecar", "wait_for"]


@dataclass
class Lifecycle:
    """What the broker says about a mailbox, through a client and the (leading) sidecar."""

    ms: mailslot.Mailslot
    sidecar: Sidecar

    async def lease_gone(self, address: str) -> bool:
        kv = await self.ms.js.key_value(p.AGENTS_BUCKET)
        try:
            return not (await kv.get(address)).value  # a lapsed lease leaves an empty marker
        except jserr.KeyNotFoundError:
            return True

    async def record(self, address: str) -> p.MailboxRecord | None:
        kv = await self.ms.js.key_value(p.MAILBOXES_BUCKET)
        try:
            return p.MailboxRecord.decode((await kv.get(address)).value)
        except jserr.KeyNotFoundError:
            return None

    async def consumers(self, address: str) -> list[str]:
        out = []
        for prio in p.PRIORITIES:
            with contextlib.suppress(jserr.NotFoundError):
                out.append(
                    (await self.ms.js.consumer_info(p.MAIL_STREAM, p.consumer_name(address, prio))).name
                )
        return out

    def reclaimed(self, address: str) -> bool:
        return any(e.address == address for e in self.sidecar.reclaims)

    async def wait_for_reclaim(self, address: str, *, timeout: float = 20.0) -> None:
        """Wait until retention of ``address`` ran out and the sidecar reclaimed it."""
        await wait_for(lambda: self.reclaimed(address), timeout=timeout)
        assert await self.record(address) is None

    async def wait_offline(self, address: str, *, timeout: float = 20.0) -> p.MailboxRecord:
        """Wait until the lease of ``address`` is gone and the sidecar has marked the mailbox
        offline; check that its consumers went and retention (not reclaim) started."""
        await wait_for(lambda: self.lease_gone(address), timeout=timeout)
        reaper = self.sidecar.reaper
        assert reaper is not None
        await wait_for(lambda: address in reaper.went_offline, timeout=timeout)
        record = await self.record(address)
        assert record is not None, f"{address} was reclaimed instead of going offline"
        assert record.offline_since is not None and record.card.get("status") == "offline"
        assert await self.consumers(address) == []
        assert not self.reclaimed(address)
        return record


@pytest.fixture
async def lifecycle(ms: mailslot.Mailslot, make_sidecar: Any) -> AsyncIterator[Lifecycle]:
    """A leading sidecar (sweeping every second) and probes, on the test's server."""
    sc = await leader_of(await make_sidecar(sweep_interval=1.0))
    yield Lifecycle(ms, sc)


#: Prefix of the line a child process reports its result on (``print(RESULT + json)``).
RESULT = "RESULT "


class Children:
    """Child processes of one test: started with their stderr in a file, SIGKILLed by pid
    (never by name) when the test leaves them running."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[str]] = []
        self.reads: list[threading.Event] = []

    def spawn(
        self, argv: Sequence[str], env: dict[str, str], *, cwd: Path | None = None
    ) -> subprocess.Popen[str]:
        with open(self.workdir / f"child-{len(self.procs)}.stderr", "w") as err:  # the child keeps a copy
            proc = subprocess.Popen(
                list(argv), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=err, text=True
            )
        self.procs.append(proc)
        return proc

    def stderr(self, proc: subprocess.Popen[str]) -> str:
        return (self.workdir / f"child-{self.procs.index(proc)}.stderr").read_text()[-4000:]

    async def _read(self, proc: subprocess.Popen[str], timeout: float, *, to_end: bool) -> Any:
        """The child's (next, or with ``to_end`` last) ``RESULT`` line, read in a thread;
        ``close`` waits for a read that outlived its timeout before closing the pipe."""
        assert proc.stdout is not None
        stdout = proc.stdout
        done = threading.Event()
        self.reads.append(done)

        def read() -> Any:
            found = None
            try:
                for line in stdout:
                    if line.startswith(RESULT):
                        found = json.loads(line[len(RESULT) :])
                        if not to_end:
                            break
            finally:
                done.set()
            return found

        found = await asyncio.wait_for(asyncio.to_thread(read), timeout)
        assert found is not None, f"child exited ({proc.poll()}) without a result: {self.stderr(proc)}"
        return found

    async def result(self, proc: subprocess.Popen[str], *, timeout: float = 120.0) -> Any:
        """The next result the running child reports (a stdout line ``RESULT <json>``) within
        ``timeout``; frameworks may print anything around it."""
        return await self._read(proc, timeout, to_end=False)

    async def finish(self, proc: subprocess.Popen[str], *, timeout: float = 120.0) -> Any:
        """Wait for the child to exit 0 (within ``timeout``); the last result it reported."""
        found = await self._read(proc, timeout, to_end=True)
        rc = await asyncio.wait_for(asyncio.to_thread(proc.wait), 30)
        assert rc == 0, (rc, self.stderr(proc))
        return found

    def kill(self, proc: subprocess.Popen[str]) -> None:
        """SIGKILL (no cleanup of any kind runs in the child) and reap it."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.wait(10)
        for done in self.reads:  # a killed child's pipe ends: every reader returns
            done.wait(10)
        for proc in self.procs:
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    kids = Children(tmp_path)
    try:
        yield kids
    finally:
        kids.close()
