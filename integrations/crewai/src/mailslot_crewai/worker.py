"""Serve a crew from a mailbox: one ``akickoff`` per inbound task, the output as the reply.

Crews keep state between runs (task outputs, agent executors), so the worker builds a
fresh crew for every message with ``crew_factory``. While the crew runs, the worker tells
the broker it is still working (``in_progress``) so a long run is not redelivered to a
replica. A run that raises is given back with ``nak(delay=...)`` from ``retry_delays``
(indexed by the delivery count); the mailbox's ``max_deliver`` ends the retries: the
broker stops redelivering, and the sidecar moves the message to dead letters. On that
last attempt the worker tells the asker (if any) that the task failed, so nobody waits
for a reply that cannot come.

Replies carry the header ``Crew-Status: ok`` (payload: the crew's ``raw`` output, or what
``reply_with`` makes of the ``CrewOutput``) or ``Crew-Status: error`` (payload: JSON with
``error`` and ``attempts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import mailslot
from mailslot import tracing

from .tools import message_text

log = logging.getLogger(__name__)

STATUS_HEADER = "Crew-Status"

CrewFactory = Callable[[mailslot.Message], Any]


def default_inputs(msg: mailslot.Message) -> dict[str, Any]:
    """Crew inputs for ``msg``: a JSON object as is, anything else as ``{"message": text}``;
    plus ``sender`` (interpolated into task descriptions like ``{message}``)."""
    body: Any = None
    with contextlib.suppress(Exception):
        body = msg.json()
    inputs = dict(body) if isinstance(body, dict) else {"message": message_text(msg)}
    inputs.setdefault("sender", msg.sender or "unknown")
    return inputs


@dataclass(frozen=True)
class Outcome:
    """What the worker did with one message."""

    message_id: str
    ok: bool
    attempt: int
    output: Any = None
    error: str | None = None
    retry_in: float | None = None

    @property
    def final(self) -> bool:
        """No more deliveries will come for this message."""
        return self.ok or self.retry_in is None


class CrewWorker:
    """Runs ``crew_factory(msg)`` (a ``Crew``, or an awaitable of one) for each message."""

    def __init__(
        self,
        mailbox: mailslot.Mailbox,
        crew_factory: CrewFactory,
        *,
        inputs: Callable[[mailslot.Message], dict[str, Any]] = default_inputs,
        reply_with: Callable[[Any], Any] | None = None,
        retry_delays: Sequence[float] = (1.0, 5.0, 30.0),
        reply_errors: bool = True,
        heartbeat: float | None = None,
    ) -> None:
        if not retry_delays:
            raise mailslot.InvalidInput("retry_delays needs at least one delay")
        self.mailbox = mailbox
        self.crew_factory = crew_factory
        self.inputs = inputs
        self.reply_with = reply_with or (lambda out: getattr(out, "raw", str(out)))
        self.retry_delays = tuple(float(d) for d in retry_delays)
        self.reply_errors = reply_errors
        policy = getattr(mailbox, "policy", None)
        self.max_deliver: int = int(getattr(policy, "max_deliver", -1))
        ack_wait = float(getattr(policy, "ack_wait", 30.0))
        self.heartbeat = heartbeat if heartbeat is not None else max(ack_wait / 3, 0.5)
        self.outcomes: list[Outcome] = []

    async def _build(self, msg: mailslot.Message) -> Any:
        crew = self.crew_factory(msg)
        if inspect.isawaitable(crew):
            crew = await crew
        return crew

    async def _keep_alive(self, msg: mailslot.Message) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            with contextlib.suppress(mailslot.MailslotError):
                await msg.in_progress()

    async def _kickoff(self, msg: mailslot.Message) -> Any:
        crew = await self._build(msg)
        pulse = asyncio.ensure_future(self._keep_alive(msg))
        try:
            return await crew.akickoff(inputs=self.inputs(msg))
        finally:
            pulse.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pulse

    async def handle(self, msg: mailslot.Message) -> Outcome:
        """Run the crew for ``msg``, reply, and settle the message. Traced as one
        ``invoke_agent`` span under the task's delivery (:mod:`mailslot.tracing`)."""
        with tracing.agent_run("crewai", self.mailbox.address, task=msg):
            return await self._handle(msg)

    async def _handle(self, msg: mailslot.Message) -> Outcome:
        attempt = msg.delivery_count
        try:
            result = await self._kickoff(msg)
        except Exception as exc:
            return await self._failed(msg, attempt, exc)
        output = self.reply_with(result)
        if msg.reply_to:
            await msg.reply(output, headers={STATUS_HEADER: "ok"})
        await msg.ack()
        outcome = Outcome(message_id=msg.id, ok=True, attempt=attempt, output=output)
        self.outcomes.append(outcome)
        return outcome

    async def _failed(self, msg: mailslot.Message, attempt: int, exc: Exception) -> Outcome:
        error = f"{type(exc).__name__}: {exc}"
        last = self.max_deliver != -1 and attempt >= self.max_deliver
        retry_in = None if last else self.retry_delays[min(attempt - 1, len(self.retry_delays) - 1)]
        log.warning("crew failed on %s (attempt %d): %s", msg.id, attempt, error)
        if last and self.reply_errors and msg.reply_to:
            with contextlib.suppress(mailslot.MailslotError):
                await msg.reply({"error": error, "attempts": attempt}, headers={STATUS_HEADER: "error"})
        # Not acked: on the last attempt the broker stops redelivering (max_deliver) and
        # reports it, so the sidecar can dead-letter the message with its history.
        await msg.nak(delay=retry_in)
        outcome = Outcome(message_id=msg.id, ok=False, attempt=attempt, error=error, retry_in=retry_in)
        self.outcomes.append(outcome)
        return outcome

    async def run(self, *, limit: int | None = None, idle_timeout: float | None = None) -> list[Outcome]:
        """Serve messages one at a time until the mailbox closes, ``limit`` messages were
        handled, or nothing arrived for ``idle_timeout`` seconds."""
        done: list[Outcome] = []
        while limit is None or len(done) < limit:
            try:
                msg = await self.mailbox.receive(timeout=idle_timeout)
            except (mailslot.MailboxClosed, mailslot.Timeout):
                break
            done.append(await self.handle(msg))
        return done


async def serve_crew(
    mailbox: mailslot.Mailbox,
    crew_factory: Callable[[mailslot.Message], Any | Awaitable[Any]],
    **options: Any,
) -> None:
    """Serve forever (until the mailbox is closed or the task cancelled)."""
    await CrewWorker(mailbox, crew_factory, **options).run()


__all__ = ["STATUS_HEADER", "CrewWorker", "Outcome", "default_inputs", "serve_crew"]
