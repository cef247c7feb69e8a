"""The one place where nats-py and broker exceptions become SDK exceptions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import nats.errors as nerr
from mailslot_broker import errors as berr
from mailslot_broker import protocol
from nats.js import errors as jserr

from . import errors as e

_BROKER_MAP: list[tuple[type[Exception], type[e.MailslotError]]] = [
    (berr.InvalidAddress, e.InvalidAddressError),
    (berr.InvalidTopic, e.InvalidTopicError),
    (berr.InvalidPriority, e.UnknownPriorityError),
    (berr.InvalidTTL, e.InvalidTTLError),
    (berr.ProvisioningError, e.ProvisioningFailed),
    (berr.BrokerError, e.BrokerFailure),
]


def translate(exc: BaseException) -> BaseException:
    """Map one exception to the SDK tree (returns ``exc`` unchanged if already ours)."""
    if isinstance(exc, e.MailslotError):
        return exc
    for src, dst in _BROKER_MAP:
        if isinstance(exc, src):
            return dst(str(exc))
    if isinstance(exc, (nerr.ConnectionClosedError, nerr.StaleConnectionError)):
        return e.NotConnected(str(exc) or "connection closed")
    if isinstance(exc, nerr.AuthorizationError):
        return e.AuthenticationFailed(str(exc) or "authorization violation")
    if isinstance(exc, nerr.NoServersError):
        return e.BrokerUnreachable(str(exc) or "no servers available")
    if isinstance(exc, jserr.ServiceUnavailableError):
        return e.JetStreamUnavailable(str(exc))
    if isinstance(exc, jserr.APIError):
        desc = (exc.description or "").lower()
        if exc.code == 503 and "jetstream not enabled" in desc:
            return e.JetStreamUnavailable(str(exc))
        if "permission" in desc or "authorization" in desc:
            return e.PermissionDenied(str(exc))
        return e.BrokerFailure(str(exc))
    if isinstance(exc, nerr.NoRespondersError):
        return e.BrokerFailure("no responders (JetStream unavailable or permission denied)")
    if isinstance(exc, (nerr.TimeoutError, asyncio.TimeoutError)):
        return e.Timeout(str(exc) or "timed out")
    if isinstance(exc, nerr.MaxPayloadError):
        return e.PayloadTooLarge(str(exc))
    if isinstance(exc, nerr.Error):
        return e.BrokerFailure(str(exc) or type(exc).__name__)
    return exc


@contextlib.contextmanager
def boundary() -> Iterator[None]:
    """Translate whatever escapes the block. Cancellation passes through untouched."""
    try:
        yield
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:
        mapped = translate(exc)
        if mapped is exc:
            raise
        raise mapped from exc


# -- argument coercion shared by the public API --------------------------------------------


def seconds(value: float | timedelta | None, *, what: str) -> float | None:
    """Float seconds from a number or timedelta, validated against the protocol minimum."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    with boundary():
        return protocol.validate_ttl(value, what=what)


def plain_seconds(value: float | timedelta | None, *, what: str) -> float | None:
    """Float seconds, >= 0, without the 1 s protocol minimum (waits, nak delays)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise e.InvalidInput(f"{what} must be a non-negative number of seconds, got {value!r}")
    return float(value)


def address(value: Any) -> str:
    with boundary():
        return protocol.validate_address(value)


def priority(value: Any) -> protocol.Priority:
    with boundary():
        return protocol.parse_priority(value)
