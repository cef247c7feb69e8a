"""How an ack is confirmed: a +ACK whose confirmation is lost is sent again, within bounds.

One policy for ``Message.ack()`` and ``Mailbox.ack_many()`` (which re-sends a whole group of
+ACKs, see :mod:`mailslot._mailbox_acks`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import nats.errors as nerr
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from .errors import Disconnected

#: What leaves an ack's confirmation missing while the +ACK may have landed: no reply in time
#: (the consumer's leader died with it), no responders (503: its consumer is electing a
#: leader) or the connection dropped (the reply went to the old socket). The +ACK is sent
#: again: the server answers a +ACK of a message it already acked like the first one (checked
#: on one server, across its restart and on a 3-node cluster across a consumer leader's kill).
UNCONFIRMED = (nerr.TimeoutError, nerr.NoRespondersError, Disconnected)
#: How long one +ACK waits for its confirmation: the first 2 s, each further one twice as long
#: up to 5 s. A reply slower than that costs a repeated +ACK, not an error.
_ACK_WAIT_FIRST = 2.0
_ACK_WAIT_MAX = 5.0
#: Pauses between +ACKs: 50 ms doubling to 0.5 s (a 503 comes back at once during an
#: election, which takes seconds). A dropped connection needs none: the request waits for it.
_ACK_RETRY_FIRST = 0.05
_ACK_RETRY_MAX = 0.5
#: How long an ack is re-sent at most when the message has no mailbox to take the bound from.
ACK_BOUND = 30.0

#: Sends the +ACK(s) once and waits up to the given seconds for the confirmation.
SendOnce = Callable[[float], Awaitable[None]]


async def until_confirmed(
    send: SendOnce, *, started: float, bound: float, outage_exceeded: Callable[[], bool]
) -> None:
    """``send`` until one confirmation comes: again after an :data:`UNCONFIRMED` error, for
    up to ``bound`` seconds since ``started`` and while ``outage_exceeded()`` is False (an
    outage is not a failover: an ack gives up once the connection has been down longer than
    outage_timeout, as a send does). The first try always happens; the last error escapes
    (for ``boundary`` to translate)."""
    try:
        # Fast path, no retrier built (tenacity costs CPU on every ack otherwise).
        await send(_ACK_WAIT_FIRST)
        return
    except UNCONFIRMED:
        if outage_exceeded():
            raise
    backoff = wait_exponential(multiplier=_ACK_RETRY_FIRST, max=_ACK_RETRY_MAX)

    def stop(state: RetryCallState) -> bool:
        return time.monotonic() - started >= bound or outage_exceeded()

    def wait(state: RetryCallState) -> float:
        failed = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failed, Disconnected):
            return 0.0  # the next +ACK waits for the connection itself
        return min(backoff(state), max(bound - (time.monotonic() - started), 0.0))

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(UNCONFIRMED), stop=stop, wait=wait, reraise=True
    ):
        with attempt:
            left = bound - (time.monotonic() - started)
            wait_for = _ACK_WAIT_FIRST * 2**attempt.retry_state.attempt_number
            await send(min(wait_for, _ACK_WAIT_MAX, max(left, 0.1)))
