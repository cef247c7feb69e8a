"""The one place where nats-py and broker exceptions become SDK exceptions."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal

import nats.errors as nerr
from mailslot_broker import errors as berr
from mailslot_broker import natscompat, protocol
from nats.js import errors as jserr

from . import errors as e

_BROKER_MAP: list[tuple[type[Exception], type[e.MailslotError]]] = [
    (berr.InvalidAddress, e.InvalidAddress),
    (berr.InvalidTopic, e.InvalidTopic),
    (berr.InvalidPriority, e.UnknownPriority),
    (berr.InvalidTTL, e.InvalidTTL),
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
        if protocol.jsapi.is_jetstream_disabled(exc):
            return e.JetStreamUnavailable(str(exc))
        if protocol.jsapi.is_permission_denied(exc):
            return e.PermissionDenied(str(exc))
        return e.BrokerFailure(str(exc))
    if isinstance(exc, nerr.NoRespondersError):
        return e.BrokerFailure("no responders (JetStream unavailable or permission denied)")
    if isinstance(exc, (nerr.TimeoutError, asyncio.TimeoutError)):
        return e.Timeout(str(exc) or "timed out")
    if isinstance(exc, nerr.MaxPayloadError):
        return e.PayloadTooLarge(str(exc))
    if isinstance(exc, nerr.Error) and "permissions violation" in str(exc).lower():
        return e.PermissionDenied(str(exc))
    if isinstance(exc, nerr.Error):
        return e.BrokerFailure(str(exc) or type(exc).__name__)
    return exc


class PermissionViolation(nerr.Error, e.PermissionDenied):
    """The server refused a subject for these credentials (raised into the waiting call)."""

    def __init__(self, kind: str, subject: str) -> None:
        super().__init__(f"nats: permissions violation for {kind} to {subject!r}")
        self.kind = kind
        self.subject = subject


_VIOLATION = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"', re.I)
#: How long a publish subject the server refused is refused locally without asking again.
_DENIED_FOR = 30.0


class PermissionGuard:
    """Makes an operation that hits a permission violation fail at once, not time out.

    The server answers a denied PUB or SUB with an asynchronous ``-ERR`` that nats-py hands
    to the error callback; the request that caused it would otherwise wait for a reply that
    never comes. The guard remembers the subject of every in-flight request (by wrapping the
    connection's ``publish``) and fails that request's future with :class:`PermissionViolation`
    when the error names its subject; a new subscription is confirmed with a PING round trip
    and refused the same way; a core publish to a subject refused within the last
    ``_DENIED_FOR`` seconds raises at once (the first one is fire-and-forget, as in NATS).
    """

    def __init__(self, nc: Any) -> None:
        self._nc = nc
        self._requests: dict[str, str] = {}  # reply token -> request subject
        self._denied_pub: dict[str, float] = {}
        self._denied_sub: dict[str, PermissionViolation] = {}
        self._orig_subscribe: Any = None  # the connection's own subscribe, once installed

    def install(self) -> PermissionGuard:
        nc = self._nc
        orig_publish, orig_subscribe = nc.publish, nc.subscribe

        async def publish(subject: str, payload: bytes = b"", reply: str = "", headers: Any = None) -> None:
            # On every publish (acks and pulls included): keep it to dict lookups.
            if self._denied_pub:
                self.check_publish(subject)
            if reply:
                prefix_str = natscompat.response_prefix(nc)
                if prefix_str and reply.startswith(prefix_str):
                    self.track(reply[len(prefix_str) :], subject)
            if type(headers) is natscompat.WireHeaders:
                await natscompat.publish_wire(nc, subject, payload, reply, headers, orig_publish)
            else:
                await orig_publish(subject, payload, reply=reply, headers=headers)

        async def subscribe(subject: str, *args: Any, **kwargs: Any) -> Any:
            sub = await self.queue_subscription(subject, *args, **kwargs)
            await self.confirm((subject, sub))
            return sub

        self._orig_subscribe = orig_subscribe
        nc.publish, nc.subscribe = publish, subscribe
        return self

    def check_publish(self, subject: str) -> None:
        """Raise :class:`PermissionViolation` at once for a subject the server refused within
        the last ``_DENIED_FOR`` seconds."""
        if not self._denied_pub:
            return
        until = self._denied_pub.get(subject.lower())
        if until is not None:
            if until > time.monotonic():
                raise PermissionViolation("publish", subject)
            del self._denied_pub[subject.lower()]

    def track(self, token: str, subject: str) -> None:
        """The request with reply token ``token`` went to ``subject``: a violation naming
        that subject fails it. Called for every request (the wrapped publish, and
        ``natscompat.jetstream_publish``, which bypasses it)."""
        if len(self._requests) > 1024:
            self._prune()
        self._requests[token] = subject.lower()

    async def queue_subscription(self, subject: str, *args: Any, **kwargs: Any) -> Any:
        """Send a SUB without waiting for the server's verdict (:meth:`confirm` does): the
        server handles one connection's commands in order, so a request sent after this one
        reaches it behind the SUB, and its round trip may overlap the confirmation's."""
        self._denied_sub.pop(subject.lower(), None)
        return await self._orig_subscribe(subject, *args, **kwargs)

    async def confirm(self, *made: tuple[str, Any]) -> None:
        """Raise the :class:`PermissionViolation` of the first of ``made`` (subject and
        subscription, from :meth:`queue_subscription`) the server refused, after
        unsubscribing the refused ones; one confirmation for all of them."""
        nc = self._nc
        subjects = [subject.lower() for subject, _ in made]
        if nc.is_connected:
            # nats-server may write the -ERR for a refused SUB just after the PONG of the
            # PING that follows it (measured: ~30% of the time); a second round trip has
            # always carried it (0 misses in 600 tries).
            for _ in range(2):
                with contextlib.suppress(Exception):
                    await nc.flush(timeout=5)
                if any(s in self._denied_sub for s in subjects):
                    break
        first: PermissionViolation | None = None
        for subject, sub in made:
            violation = self._denied_sub.pop(subject.lower(), None)
            if violation is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                first = first or violation
        if first is not None:
            raise first

    def _prune(self) -> None:
        live = natscompat.pending_responses(self._nc)
        for token in [t for t in self._requests if t not in live]:
            del self._requests[token]

    def handle(self, exc: BaseException) -> bool:
        """Called from the error callback; True if ``exc`` was a permission violation."""
        m = _VIOLATION.search(str(exc))
        if m is None:
            return False
        # nats-py lowercases the server's message: subjects are compared lowercased.
        kind, subject = m.group(1).lower(), m.group(2).lower()
        if kind == "subscription":
            self._denied_sub[subject] = PermissionViolation("subscription", subject)
            return True
        self._denied_pub[subject] = time.monotonic() + _DENIED_FOR
        live = natscompat.pending_responses(self._nc)
        for token, subj in list(self._requests.items()):
            if subj != subject:
                continue
            del self._requests[token]
            fut = live.get(token)
            if fut is not None and not fut.done():
                fut.set_exception(PermissionViolation("publish", subject))
        return True


class _Boundary:
    """The context manager :func:`boundary` returns. A class, not a generator: it wraps every
    send, ack and pull, and a generator-based one cost about 3 us each time."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> Literal[False]:
        # Cancellation and KeyboardInterrupt are not Exceptions: they pass through untouched.
        if exc is None or not isinstance(exc, Exception):
            return False
        mapped = translate(exc)
        if mapped is exc:
            return False
        raise mapped from exc


_BOUNDARY = _Boundary()


def boundary() -> _Boundary:
    """Translate whatever escapes the block. Cancellation passes through untouched."""
    return _BOUNDARY


# -- argument coercion shared by the public API --------------------------------------------
#
# The rules live in the protocol package (``protocol.values``); these only turn its errors into
# the SDK's: durations -> InvalidTTL, everything else -> InvalidInput (or the subclass the
# boundary maps it to).


@contextlib.contextmanager
def checking() -> Iterator[None]:
    """Translate a protocol validation error raised in the block into an InvalidInput."""
    try:
        yield
    except berr.ProtocolViolation as exc:
        mapped = translate(exc)
        if not isinstance(mapped, e.InvalidInput):
            mapped = e.InvalidInput(str(exc))
        raise mapped from exc


def seconds(
    value: float | timedelta | None,
    *,
    what: str,
    minimum: float = protocol.MIN_TTL_SECONDS,
    maximum: float = protocol.MAX_SECONDS,
) -> float | None:
    """Float seconds from a number or timedelta (None stays None): finite, never a bool, in
    ``[minimum, maximum]`` (by default a TTL's range, 1 s .. ``MAX_SECONDS``)."""
    if value is None:
        return None
    with checking():
        return protocol.validate_seconds(value, what=what, minimum=minimum, maximum=maximum)


def plain_seconds(
    value: float | timedelta | None,
    *,
    what: str,
    minimum: float = 0.0,
    maximum: float = protocol.MAX_SECONDS,
) -> float | None:
    """Float seconds, 0 .. ``MAX_SECONDS`` (waits, nak delays): :func:`seconds` without the
    1 s protocol minimum."""
    return seconds(value, what=what, minimum=minimum, maximum=maximum)


def count(value: Any, *, what: str, minimum: int, maximum: int, unlimited: int | None = None) -> int:
    """An int in ``[minimum, maximum]`` (or ``unlimited``); bools and floats are refused."""
    with checking():
        return protocol.validate_count(
            value, what=what, minimum=minimum, maximum=maximum, unlimited=unlimited
        )


def retry_policy(ack_wait: Any, max_deliver: Any, backoff: Any) -> protocol.RetryPolicy:
    """A mailbox's retry policy, every number checked (``protocol.validate_retry``)."""
    with checking():
        aw, md, bo = protocol.validate_retry(ack_wait, max_deliver, backoff)
    return protocol.RetryPolicy(ack_wait=aw, max_deliver=md, backoff=bo)


def header_value(value: Any, *, what: str) -> str:
    """A str NATS carries unchanged in a header (one line, UTF-8, no outer whitespace)."""
    with checking():
        return protocol.validate_header_value(value, what=what)


def address(value: Any) -> str:
    with boundary():
        return protocol.validate_address(value)


def priority(value: Any) -> protocol.Priority:
    with boundary():
        return protocol.parse_priority(value)
