"""Where the examples find a broker: ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``) when set,
else a throwaway nats-server, so every example runs with nothing set up beforehand.

``mailslot.connect()`` with no URL reads those two variables; child processes an example
starts inherit them. In your own code, connect to your broker and skip this module.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def broker() -> Iterator[None]:
    """Run the block with ``MAILSLOT_URL`` / ``MAILSLOT_CREDENTIALS`` set: the caller's, or a
    temporary nats-server's (started here, stopped when the block ends)."""
    if os.environ.get("MAILSLOT_URL"):
        yield
        return
    from mailslot_broker import NatsServer

    work = Path(tempfile.mkdtemp(prefix="mailslot-example-"))
    server = NatsServer(work / "nats").start()
    saved = {k: os.environ.get(k) for k in ("MAILSLOT_URL", "MAILSLOT_CREDENTIALS")}
    try:
        creds = work / "credentials.json"
        server.credentials.write(creds)
        os.environ.update(MAILSLOT_URL=server.url, MAILSLOT_CREDENTIALS=str(creds))
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
