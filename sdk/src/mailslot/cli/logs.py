"""``mailslot logs [broker|sidecar] [-f]``: the local broker's log files.

The launcher writes nats-server's output to ``$MAILSLOT_HOME/broker/nats-server.log`` and the
sidecar's to ``$MAILSLOT_HOME/sidecar.log`` (both appended across starts). Reading them
creates nothing.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from enum import Enum
from pathlib import Path
from typing import IO

import typer
from mailslot_broker.home import mailslot_home, read_state
from mailslot_broker.local import BROKER_DIR

from .app import app, fail

SIDECAR_LOG = "sidecar.log"
BROKER_LOG = "nats-server.log"


class Source(str, Enum):
    broker = "broker"
    sidecar = "sidecar"


def log_paths(home: Path) -> dict[str, Path]:
    """Where each log is (the broker's work dir from its state file, if it names one)."""
    state = read_state(home)
    workdir = Path(state.workdir) if state is not None else home / BROKER_DIR
    return {Source.broker.value: workdir / BROKER_LOG, Source.sidecar.value: home / SIDECAR_LOG}


def _last_lines(fh: IO[bytes], n: int) -> list[bytes]:
    return list(deque(fh, maxlen=n)) if n > 0 else []


def _emit(prefix: str, line: bytes) -> None:
    text = line.decode(errors="replace")
    sys.stdout.write(prefix + (text if text.endswith("\n") else text + "\n"))


@app.command()
def logs(
    source: Source | None = typer.Argument(None, help="broker or sidecar (default: both)"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new lines (Ctrl-C stops)"),
    lines: int = typer.Option(50, "--lines", "-n", help="start with the last N lines"),
) -> None:
    """Print the local broker's (nats-server) and sidecar's logs; exits 1 if there is none."""
    home = mailslot_home(create=False)
    paths = log_paths(home)
    wanted = [source.value] if source else list(paths)
    found = {name: paths[name] for name in wanted if paths[name].is_file()}
    if not found:
        where = ", ".join(str(paths[n]) for n in wanted)
        fail(f"no log at {where}: the local broker has not run with MAILSLOT_HOME={home}")
    both = len(wanted) > 1
    handles: dict[str, IO[bytes]] = {}
    with contextlib.ExitStack() as stack:
        for name, path in found.items():
            fh = handles[name] = stack.enter_context(open(path, "rb"))
            for line in _last_lines(fh, lines):
                _emit(f"{name}| " if both else "", line)
        sys.stdout.flush()
        if not follow:
            return
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                idle = True
                for name, fh in handles.items():
                    for line in fh.readlines():
                        idle = False
                        _emit(f"{name}| " if both else "", line)
                sys.stdout.flush()
                if idle:
                    time.sleep(0.2)
