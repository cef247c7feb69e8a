"""What a connection is opened with: one object, built once by ``connect`` (or its sync twin)
and read by the link, the client and the mailboxes, instead of a dozen parameters handed on
from function to function."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mailslot_broker import protocol as p

from .errors import InvalidInput

#: How long a receive waits for a priority whose consumer does not answer (a cluster electing
#: a leader) before it raises Unavailable; ``Mailbox.failover_timeout`` overrides it.
DEFAULT_FAILOVER_TIMEOUT = 30.0


def _seconds(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidInput(f"{what} must be a non-negative number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ConnectOptions:
    """The arguments of :func:`mailslot.connect` (see there), checked."""

    url: str | list[str] | None = None
    credentials: str | Path | None = None
    user: str | None = None
    password: str | None = None
    token: str | None = None
    tenant: str | None = None
    name: str | None = None
    timeout: float = 5.0
    provision_streams: bool = True
    settings: p.StreamSettings | None = None
    tls_ca: str | Path | None = None
    publish_retry_for: float = 20.0
    outage_timeout: float = 5.0
    receive_outage_timeout: float = 60.0
    failover_timeout: float = DEFAULT_FAILOVER_TIMEOUT

    def __post_init__(self) -> None:
        for what in ("outage_timeout", "receive_outage_timeout", "failover_timeout"):
            object.__setattr__(self, what, _seconds(what, getattr(self, what)))
        if math.isnan(self.failover_timeout):  # (math.inf is fine: wait out any failover)
            raise InvalidInput("failover_timeout must be a number of seconds, got nan")


__all__ = ["DEFAULT_FAILOVER_TIMEOUT", "ConnectOptions"]
