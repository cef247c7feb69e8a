"""The ``mailslot`` command line (typer + rich). Each module registers its commands on
:data:`mailslot.cli.app.app`; importing them here wires them in."""

from __future__ import annotations

from . import (
    a2a,  # noqa: F401  (registers a2a, the A2A HTTP front of mailslot-a2a)
    agent,  # noqa: F401  (registers agent issue/revoke/list)
    audit,  # noqa: F401  (registers audit, audit enable/disable/status)
    broker,  # noqa: F401  (registers up/down/status)
    console,  # noqa: F401  (registers console, the web console)
    device_logins,  # noqa: F401  (registers device issue/revoke/list, MQTT logins)
    devices,  # noqa: F401  (registers devices, the MQTT device bridge)
    dlq,  # noqa: F401  (registers dlq list/show/requeue/purge)
    logs,  # noqa: F401  (registers logs)
    mail,  # noqa: F401  (registers inbox/tail/agents)
    mailboxes,  # noqa: F401  (registers mailboxes/show/purge)
    mcp,  # noqa: F401  (registers mcp, the MCP server of mailslot-mcp)
    mq9,  # noqa: F401  (registers mq9, the mq9 gateway of mailslot-mq9)
    outgoing,  # noqa: F401  (registers send/publish/ask)
    stats,  # noqa: F401  (registers stats, sidecar)
    synadia,  # noqa: F401  (registers synadia, the bridge of mailslot-synadia)
    tenant,  # noqa: F401  (registers tenant add/list/remove)
)
from .app import app, main

__all__ = ["app", "main"]
