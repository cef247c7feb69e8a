"""Serve an unchanged A2A ``AgentExecutor`` from a Mailslot mailbox.

The runner is a2a's own ``DefaultRequestHandler`` with the Mailslot task store and event
stream, fed from the agent's mailbox instead of an HTTP server: each ``SendMessage`` mail is
handed to ``on_message_send`` and acked only when the handler is done with it (the task
finished, failed, or waits for input). While it runs, the mail is kept ``in_progress``; if the
process dies, the mail comes back after the ack wait to another replica (or this one,
restarted), which finds the task in the shared store and runs it. Every event the handler
applies goes, with its version, to the requester's reply mailbox (:mod:`mailslot_a2a.events`).

A cancel of a task that runs here, asked by any process (the client transport, the HTTP
front), reaches the runner at once: the task is marked running in the store while it runs, the
canceller asks under ``("cancel", task_id)``, and the runner, which watches those keys, cancels
it through its own handler: a2a's local cancel, which calls the executor's ``cancel()`` and
cancels the ``execute`` task.

A request that fails with something other than an A2A error ends as a FAILED task with the
reason, at once if the executor raised, after ``max_attempts`` deliveries if the runner
itself failed (:mod:`mailslot_a2a.failures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import mailslot
from a2a.server.agent_execution import AgentExecutor
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.types.a2a_pb2 import AgentCard, CancelTaskRequest
from a2a.utils.errors import A2AError
from mailslot import tracing
from mailslot.tasks import cancel_and_wait

from .cards import from_a2a, mailslot_interface, with_interfaces
from .codec import request_of
from .events import MailslotEventStream
from .failures import GuardedExecutor, fail_task, reason_of
from .store import NAMESPACE, VersionedMailslotTaskStore

log = logging.getLogger("mailslot_a2a.runner")

#: How long close() waits for the SDK to wind down the tasks that ran here.
CLOSE_WAIT = 5.0


class A2ARunner:
    """Run ``executor`` for the requests in ``address``'s mailbox.

    >>> async with A2ARunner(ms, MyExecutor(), card, address="echo") as runner:
    ...     await runner.serve_forever()

    The agent registers with ``card`` (its A2A card, the Mailslot binding added first), so the
    HTTP front and ``ms.agents()`` find it. ``concurrency`` tasks run at once. Several runners
    on one address share its mail and the task store (replicas). A request the runner fails
    on (not the executor: that ends the task FAILED at once) is tried again after
    ``retry_delay`` s times the attempt, and after ``max_attempts`` deliveries its task is
    FAILED with the reason and the mail termed with it.
    """

    def __init__(
        self,
        ms: mailslot.Mailslot,
        executor: AgentExecutor,
        card: AgentCard,
        *,
        address: str,
        namespace: str = NAMESPACE,
        concurrency: int = 1,
        ack_wait: float = 30.0,
        lease_ttl: float = 60.0,
        max_attempts: int = 3,
        retry_delay: float = 1.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.ms = ms
        self.address = address
        others = [i for i in card.supported_interfaces if i.url != mailslot_interface(address).url]
        self.card = with_interfaces(card, [mailslot_interface(address), *others])
        self.store = VersionedMailslotTaskStore(ms, namespace=namespace)
        self.events = MailslotEventStream(ms, namespace=namespace, sender=address)
        self.handler = DefaultRequestHandler(
            GuardedExecutor(executor), self.store, self.card, event_stream=self.events
        )
        self.concurrency = concurrency
        self.ack_wait = ack_wait
        self.lease_ttl = lease_ttl
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.failed = 0
        self.handled = 0
        self._mailbox: mailslot.Mailbox | None = None
        self._loop: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._here: set[str] = set()  # ids of the tasks running here
        self._cancels: mailslot.StateWatch | None = None
        self._slots = asyncio.Semaphore(concurrency)

    async def start(self) -> A2ARunner:
        """Open the mailbox (registering the card) and start taking requests."""
        if self._loop is None:
            self._mailbox = await self.ms.open(
                self.address,
                card=from_a2a(self.card, address=self.address),
                ack_wait=self.ack_wait,
                ttl=self.lease_ttl,
                prefetch=self.concurrency,
            )
            try:
                self._cancels = await self.store.records.state.watch(prefix=("cancel",)).start()
            except BaseException:
                # e.g. PermissionDenied: an agent credential may not use the state store.
                # The mailbox just opened is closed again, not left renewing its lease.
                mailbox, self._mailbox = self._mailbox, None
                await mailbox.close()
                raise
            self._spawn(self._watch_cancels())
            self._loop = asyncio.create_task(self._take(), name=f"mailslot-a2a:{self.address}")
        return self

    async def serve_forever(self) -> None:
        await self.start()
        assert self._loop is not None
        await self._loop

    async def _take(self) -> None:
        assert self._mailbox is not None
        while True:
            await self._slots.acquire()
            try:
                msg = await self._mailbox.receive()
            except BaseException:
                self._slots.release()
                raise
            self._spawn(self._handle(msg))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        job = asyncio.create_task(work)
        self._running.add(job)
        job.add_done_callback(self._running.discard)

    async def _watch_cancels(self) -> None:
        assert self._cancels is not None
        async for change in self._cancels:
            if change.value is not None and change.key[-1] in self._here:
                self._spawn(self._cancel(change.key[-1]))

    async def _cancel(self, task_id: str) -> None:
        try:
            await self.handler.on_cancel_task(CancelTaskRequest(id=task_id), ServerCallContext())
        except A2AError as exc:  # e.g. it finished meanwhile
            log.info("cancel of task %s: %s", task_id, exc)
        except Exception:
            log.exception("cancel of task %s failed", task_id)

    async def _handle(self, msg: mailslot.Message) -> None:
        """One request, traced as an ``invoke_agent`` span under its delivery
        (:mod:`mailslot.tracing`): the task's events are sent within it."""
        address = self._mailbox.address if self._mailbox is not None else "a2a"
        with tracing.agent_run("a2a", address, task=msg):
            await self._run(msg)

    async def _run(self, msg: mailslot.Message) -> None:
        try:
            request = request_of(msg.json())
        except (A2AError, ValueError) as exc:
            try:
                await msg.term(reason=f"not an A2A request: {exc}")
            finally:
                self._slots.release()
            return
        request.configuration.return_immediately = False  # the mail is done when the task is
        task_id = request.message.task_id
        keepalive = asyncio.create_task(self._keep(msg, task_id))
        try:
            if task_id:
                self._here.add(task_id)
                await self._mark_running(task_id)
            try:
                await self.handler.on_message_send(request, ServerCallContext())
            except A2AError as exc:
                # e.g. the task was canceled while it waited in the mailbox: nothing to run.
                log.info("request for task %s not run: %s", task_id, exc)
            await msg.ack()
            self.handled += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(msg, task_id, exc)
        finally:
            keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keepalive
            if task_id:
                self._here.discard(task_id)
                with contextlib.suppress(mailslot.MailslotError):
                    await self.store.records.clear_running(task_id)
            self._slots.release()

    async def _failed(self, msg: mailslot.Message, task_id: str, exc: Exception) -> None:
        attempt = msg.delivery_count
        if attempt < self.max_attempts:
            log.warning(
                "request %s failed (attempt %d of %d), tried again: %s",
                msg.id,
                attempt,
                self.max_attempts,
                reason_of(exc),
            )
            with contextlib.suppress(mailslot.MailslotError):
                await msg.nak(delay=self.retry_delay * attempt)
            return
        reason = f"runner failed {attempt} times: {reason_of(exc)}"
        log.error("request %s for task %s given up: %s", msg.id, task_id, reason)
        self.failed += 1
        try:
            if task_id:
                await fail_task(self.store, self.events, task_id, reason)
        except Exception:
            log.exception("task %s could not be marked FAILED", task_id)
        finally:
            with contextlib.suppress(mailslot.MailslotError):
                await msg.term(reason=reason)

    async def _mark_running(self, task_id: str) -> None:
        # As long as the mail's ack wait: a replica that dies stops saying so about then.
        await self.store.records.set_running(task_id, ttl=self.ack_wait)

    async def _keep(self, msg: mailslot.Message, task_id: str) -> None:
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            with contextlib.suppress(mailslot.MailslotError):
                await msg.in_progress()
                if task_id:
                    await self._mark_running(task_id)

    async def close(self) -> None:
        """Stop taking requests. Tasks still running are cancelled; their mail was not acked,
        so they run again after the ack wait (here or at another replica)."""
        # Cancelled again until they end: a receive can swallow one cancel (mailslot.tasks).
        await cancel_and_wait([self._loop, *self._running])
        self._loop = None
        # The SDK's producer/consumer tasks of what ran here; bounded, as a task the SDK left
        # stuck must not keep the runner from closing.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.handler.aclose(), CLOSE_WAIT)
        if self._cancels is not None:
            await self._cancels.close()
            self._cancels = None
        if self._mailbox is not None:
            await self._mailbox.close()
            self._mailbox = None

    async def __aenter__(self) -> A2ARunner:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


__all__ = ["A2ARunner"]
