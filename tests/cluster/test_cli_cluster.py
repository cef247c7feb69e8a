"""``mailslot up --cluster 3``: a foreground 3-node cluster a client reaches through its seed
URLs (comma-separated in MAILSLOT_URL), stopped cleanly by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mailslot
from mailslot_broker import protocol as p
from mailslot_broker.launcher import pid_alive


async def test_up_cluster_serves_replicated_mail(_isolated_home, monkeypatch):
    proc = subprocess.Popen(  # noqa: ASYNC220 - a long-running child, read line by line
        [sys.executable, "-m", "mailslot", "up", "--cluster", "3", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        buf = ""
        info = None
        deadline = time.monotonic() + 60
        while info is None and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, f"mailslot up --cluster exited: {proc.stderr.read()}"  # type: ignore[union-attr]
            buf += line
            try:
                info = json.loads(buf)
            except ValueError:
                continue
        assert info is not None and len(info["urls"]) == 3
        monkeypatch.setenv("MAILSLOT_URL", ",".join(info["urls"]))
        monkeypatch.setenv("MAILSLOT_CREDENTIALS", info["credentials"])
        async with mailslot.connect(settings=p.StreamSettings(replicas=3)) as ms:
            assert (await ms.js.stream_info(p.MAIL_STREAM)).config.num_replicas == 3
            mb = await ms.open("c", ttl=30)
            await ms.send("c", "replicated")
            m = await mb.receive(timeout=10)
            assert m.text == "replicated"
            await m.ack()
            await mb.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    for pid in info["pids"]:
        assert not pid_alive(pid)
