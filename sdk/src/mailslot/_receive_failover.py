"""The failover wait of the receive loop, sans I/O: which level it waits for, and until when.

A pull that goes unanswered, is refused (503: no responders, the consumer has no leader or is
gone) or is ended by a leadership change says nothing about its level, so the loop must not
skip it: strict priority would break for the seconds a leader election takes. The level is
waited for (mail above it is still served), asked again 50 ms, doubling to 0.5 s, and after
``failover_timeout`` the receive raises :class:`~mailslot.Unavailable`. Every clock reading is
passed in, so the rules run in a test without a server or a sleep.
"""

from __future__ import annotations

import enum
import math

from mailslot_broker import protocol as p

from .errors import AuthenticationFailed, InvalidInput, MailslotError, PermissionDenied, Unavailable

#: How soon a level that did not answer is asked again: doubling from the first to the last.
RETRY_FIRST = 0.05
RETRY_MAX = 0.5
#: A refused level has its consumers re-created (in the background) at most this often.
RECREATE_EVERY = 3.0
#: A level not asked for this long starts its failover clock afresh when asked again.
STALE_AFTER = 5.0
DEFAULT_FAILOVER_TIMEOUT = 30.0

#: Errors from re-creating the consumers that no waiting cures: raised at once.
_PERMANENT = (PermissionDenied, AuthenticationFailed, InvalidInput)

#: 409 replies that end a pull without saying the level is empty.
_NOT_AN_ANSWER_409 = ("leadership change", "consumer deleted")


class NoAnswer(enum.Enum):
    """Why a pull says nothing about its level."""

    UNANSWERED = "no reply"  # timed out, or its connection dropped
    REFUSED = "refused"  # 503 (no responders), or ended by a leadership change


def refusal(status: str, description: str) -> NoAnswer | None:
    """What a status reply that ends a pull says: REFUSED if nobody served the consumer, None
    if the level answered (404 no messages, 408 expired, 409 limits: the level is done)."""
    if status == "503" or (status == "409" and any(s in description.lower() for s in _NOT_AN_ANSWER_409)):
        return NoAnswer.REFUSED
    return None


def retry_delay(retries: int) -> float:
    """The pause before asking a silent level again for the ``retries``-th time."""
    return min(RETRY_FIRST * 2**retries, RETRY_MAX)


def failover_seconds(seconds: object) -> float:
    """A checked ``failover_timeout``: a non-negative number of seconds (``math.inf`` ok)."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or math.isnan(seconds):
        raise InvalidInput(f"failover_timeout must be a number of seconds, got {seconds!r}")
    if seconds < 0:
        raise InvalidInput(f"failover_timeout must not be negative, got {seconds!r}")
    return float(seconds)


class FailoverWait:
    """The level the receive loop waits for, since when, and why (for the error at the bound).

    Also the throttle and the last outcome of re-creating the consumers of a refused level:
    a consumer that is really gone answers 503 too, so the loop re-creates it in the
    background, and a re-creation that fails for good (permissions) must surface."""

    def __init__(self, *, timeout: float = DEFAULT_FAILOVER_TIMEOUT) -> None:
        self._timeout = failover_seconds(timeout)
        #: The level waited for (its pull got no answer): nothing below it is served.
        self.blocked: p.Priority | None = None
        #: Since when ``blocked`` has not answered, and when it was last asked.
        self.since: float | None = None
        self.asked = 0.0
        #: The last failed pull or consumer re-creation.
        self.cause: BaseException | None = None
        self.recreated_at = float("-inf")
        self.recreate_error: BaseException | None = None

    @property
    def timeout(self) -> float:
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._timeout = failover_seconds(seconds)

    def silent(self, prio: p.Priority, why: NoAnswer, *, now: float, consumer: str) -> None:
        """``prio`` said nothing: wait for it. Its clock starts unless it was already waited
        for and asked recently (a level left alone a while, e.g. between receives that mail
        above it served, gets a full bound again)."""
        if self.blocked != prio or self.since is None or now - self.asked > STALE_AFTER:
            self.since = now
        self.blocked = prio
        self.asked = now
        self.cause = self.recreate_error or TimeoutError(f"the pull of {consumer} was {why.value}")

    def answered(self, prio: p.Priority) -> None:
        if self.blocked == prio:
            self.blocked = None
            self.since = None
            self.cause = None

    def holds_back(self, best: int) -> bool:
        """True if mail of priority ``best`` must wait: a level above it is waited for."""
        return self.blocked is not None and best > self.blocked

    def recreate_due(self, now: float) -> bool:
        """True (and counted as started) if the consumers may be re-created now."""
        if now - self.recreated_at < RECREATE_EVERY:
            return False
        self.recreated_at = now
        return True

    def check(self, *, now: float, address: str) -> None:
        """Raise once the level waited for has said nothing for ``timeout`` (or re-creating
        its consumers failed in a way no waiting cures)."""
        if isinstance(self.recreate_error, _PERMANENT):
            err, self.recreate_error = self.recreate_error, None
            raise err
        if self.blocked is None or self.since is None:
            return
        silent = now - self.since
        if silent < self._timeout:
            return
        prio, cause = self.blocked, self.cause
        self.since = None  # the next receive waits a full bound again
        why = "nobody serves its consumer (no leader: is a majority of the cluster up?)"
        if isinstance(cause, MailslotError):
            why += f"; re-creating it failed: {type(cause).__name__}: {cause}"
        raise Unavailable(
            f"priority {prio.label} of mailbox {address} has not answered for {silent:.1f} s "
            f"(failover_timeout {self._timeout:g} s): {why}"
        ) from cause

    def note(self, *, now: float) -> str:
        """For the Timeout of a receive that ended while waiting for a level."""
        if self.blocked is None or self.since is None:
            return ""
        silent = now - self.since
        return f" (priority {self.blocked.label} has not answered for {silent:.1f} s: a leader election?)"
