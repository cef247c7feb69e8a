"""The connection's options and the server's INFO, which nats-py keeps private."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.aio.client import Client


def keep_reconnecting(nc: Client, *, wait: float) -> None:
    """From now on reconnect forever, ``wait`` seconds apart (options read at each attempt)."""
    for key in ("max_reconnect_attempts", "reconnect_time_wait"):
        if key not in nc.options:
            raise RuntimeError(f"nats-py has no connection option {key!r}")
    nc.options["max_reconnect_attempts"] = -1
    nc.options["reconnect_time_wait"] = wait


def server_info(nc: Client) -> dict[str, Any]:
    """The INFO ``nc`` got from its server at its latest (re)connect, empty before the first;
    a copy. The INFO updates a server sends later are not kept by nats-py (only the servers
    they name, in ``nc.servers``)."""
    return dict(nc._server_info)
