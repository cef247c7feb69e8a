"""Serve an AgentChat agent or team from a mailbox.

Each inbound message is one task. The worker runs ``agent.run(task=...)``, replies to the
sender's ``reply_to`` with the final result, and only then acks, so a crash in between means
redelivery, not loss (the reply carries an idempotency key, so a redelivered task that already
answered does not answer twice). A failing run is nak'ed with a growing delay; on the last
allowed delivery it is termed, which sends it to dead letters, and the asker gets an error
reply instead of waiting out its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import mailslot
from autogen_agentchat.base import ChatAgent, TaskResult, Team
from autogen_core import CancellationToken
from mailslot import tracing
from mailslot.tasks import cancel_and_wait

from .codec import AgentResult, parse_task

log = logging.getLogger(__name__)

Runner = ChatAgent | Team
RunnerSource = Runner | Callable[[], Runner | Awaitable[Runner]]


class AgentWorker:
    """Runs tasks from ``mailbox`` through ``agent`` (an agent, a team, or a factory of either).

    With an instance, conversations are kept apart by thread id: the runner's state is saved
    after each task and loaded before the next task of the same thread (at most
    ``max_threads`` remembered); a new thread starts from a reset. With a factory every task
    gets a fresh runner.
    """

    def __init__(
        self,
        mailbox: mailslot.Mailbox,
        agent: RunnerSource,
        *,
        backoff: Sequence[float] = (1.0, 5.0, 30.0),
        max_threads: int = 128,
        reply_ttl: float | None = None,
    ) -> None:
        self.mailbox = mailbox
        self._source = agent
        self._factory = not isinstance(agent, (ChatAgent, Team)) and callable(agent)
        self._backoff = tuple(float(b) for b in backoff) or (1.0,)
        self._states: OrderedDict[str, Mapping[str, Any]] = OrderedDict()
        self._max_threads = max_threads
        self._reply_ttl = reply_ttl
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.completed = 0
        self.failed = 0
        self.termed = 0
        self.last_error: BaseException | None = None

    # -- one task ---------------------------------------------------------------------------

    async def _runner(self) -> Runner:
        if not self._factory:
            return self._source  # type: ignore[return-value]
        made = self._source()  # type: ignore[operator]
        return await made if inspect.isawaitable(made) else made

    async def _heartbeat(self, msg: mailslot.Message) -> None:
        """Keep the message ours while a long run is going (ack-wait would redeliver it)."""
        policy = getattr(self.mailbox, "policy", None)
        every = max(0.5, float(getattr(policy, "ack_wait", 30.0)) / 3)
        while True:
            await asyncio.sleep(every)
            with contextlib.suppress(mailslot.MailslotError):
                await msg.in_progress()

    async def _run(self, msg: mailslot.Message) -> AgentResult:
        task = parse_task(msg)
        messages = task.chat_messages()
        runner = await self._runner()
        thread = msg.thread_id
        if not self._factory:
            if thread and thread in self._states:
                await runner.load_state(self._states[thread])
            else:
                await runner.reset() if isinstance(runner, Team) else await runner.on_reset(
                    CancellationToken()
                )
        result: TaskResult = await runner.run(task=messages)
        if not self._factory and thread:
            self._states[thread] = await runner.save_state()
            self._states.move_to_end(thread)
            while len(self._states) > self._max_threads:
                self._states.popitem(last=False)
        return AgentResult.from_task_result(
            result, source=getattr(runner, "name", "team"), skip=len(messages)
        )

    async def _answer(self, msg: mailslot.Message, result: AgentResult) -> None:
        if not msg.reply_to:
            return
        await self.mailbox.send(
            msg.reply_to,
            result.model_dump(mode="json"),
            priority=msg.priority,
            correlation_id=msg.correlation_id or msg.id,
            thread_id=msg.thread_id,
            idempotency_key=f"{msg.id}.{result.kind}",
            ttl=self._reply_ttl,
        )

    def _max_deliver(self) -> int:
        policy = getattr(self.mailbox, "policy", None)
        return int(getattr(policy, "max_deliver", -1))

    async def handle(self, msg: mailslot.Message) -> bool:
        """Process one task message; True when it succeeded and was acked. Traced as one
        ``invoke_agent`` span under the task's delivery (:mod:`mailslot.tracing`)."""
        name = getattr(self._source, "name", None) or self.mailbox.address
        with tracing.agent_run("autogen", str(name), task=msg, **{"mailslot.mailbox": self.mailbox.address}):
            return await self._handle(msg)

    async def _handle(self, msg: mailslot.Message) -> bool:
        async with self._lock:  # one runner instance: one task at a time
            beat = asyncio.create_task(self._heartbeat(msg))
            try:
                result = await self._run(msg)
                await self._answer(msg, result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(msg, exc)
                return False
            finally:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beat
            await msg.ack()
            self.completed += 1
            return True

    async def _failed(self, msg: mailslot.Message, exc: Exception) -> None:
        self.failed += 1
        self.last_error = exc
        attempt = msg.delivery_count
        limit = self._max_deliver()
        reason = f"{type(exc).__name__}: {exc}"
        if limit != -1 and attempt >= limit:
            log.warning("task %s failed on its last delivery (%d): %s", msg.id, attempt, reason)
            with contextlib.suppress(mailslot.MailslotError):
                await self._answer(msg, AgentResult(kind="autogen.error", error=reason))
            await msg.term(reason=reason[:200])
            self.termed += 1
        else:
            delay = self._backoff[min(attempt - 1, len(self._backoff) - 1)]
            log.info("task %s failed (delivery %d), retry in %gs: %s", msg.id, attempt, delay, reason)
            await msg.nak(delay=delay)

    # -- serving ------------------------------------------------------------------------------

    async def serve(self, *, max_tasks: int | None = None) -> None:
        """Handle tasks until the mailbox closes (or ``max_tasks`` were handled)."""
        handled = 0
        while True:
            try:
                msg = await self.mailbox.receive()
            except mailslot.MailboxClosed:
                return
            except mailslot.MailslotError:
                log.exception("worker on %s: receive failed; retrying", self.mailbox.address)
                await asyncio.sleep(1.0)
                continue
            try:
                await self.handle(msg)
            except mailslot.MailslotError:  # settling failed: the server redelivers the task
                log.exception("worker on %s: could not settle %s", self.mailbox.address, msg.id)
            handled += 1
            if max_tasks is not None and handled >= max_tasks:
                return

    async def start(self) -> AgentWorker:
        """Serve in a background task; :meth:`stop` ends it."""
        if self._task is None:
            self._task = asyncio.create_task(self.serve(), name=f"autogen-worker:{self.mailbox.address}")
        return self

    async def stop(self, *, grace: float = 30.0) -> None:
        """Stop serving. A task being handled gets ``grace`` seconds to finish (reply and ack)
        before it is cancelled, which would leave it to be redelivered."""
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(self._lock.acquire(), grace)
            acquired = True
        except asyncio.TimeoutError:
            acquired = False
        try:
            # Cancelled again until it ends: a receive can swallow one cancel (mailslot.tasks).
            await cancel_and_wait([task])
            failed = None if task.cancelled() else task.exception()
            if failed is not None:
                raise failed
        finally:
            if acquired:
                self._lock.release()

    async def __aenter__(self) -> AgentWorker:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve_agent(mailbox: mailslot.Mailbox, agent: RunnerSource, **options: Any) -> AgentWorker:
    """Start an :class:`AgentWorker` in the background and return it."""
    return await AgentWorker(mailbox, agent, **options).start()


__all__ = ["AgentWorker", "serve_agent"]
