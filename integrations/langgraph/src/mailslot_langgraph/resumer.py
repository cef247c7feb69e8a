"""The resumer: waits for the replies paused threads are waiting for and resumes them.

For every pending interrupt raised by :func:`~mailslot_langgraph.await_reply` it collects
the reply with ``Mailbox.reply_for(correlation_id)`` and resumes exactly that interrupt with
``Command(resume={interrupt_id: payload})``. Replies wait durably at the mailbox's reply
sub-address, so it does not matter whether the reply lands before the graph reached its
wait, while no process was running (its lease lapsed: the mailbox is offline, its mail
stays), or while the resumer waits. They wait for the mailbox's retention (``open(address,
keep=...)``, 7 days by default for a named mailbox); when that runs out, a reply nobody
collected goes to dead letters (``mailbox reclaimed``) and the thread keeps waiting until it
is requeued. Resume with a mailbox at the address that sent the request. The thread state (in the
checkpointer) is the durable ``correlation id -> (thread, interrupt)`` map: a new process
finds the waits with :meth:`Resumer.watch` (a known thread) or :meth:`Resumer.scan`
(every thread in the checkpointer), and :meth:`Resumer.follow` keeps finding threads that
pause later (pushed by the checkpointer's store watch: see :mod:`._following`).

Several resumers (replicas, in any processes) may watch one thread: each resume is taken
under an advisory claim (``ms.claims``) on (thread, interrupt), and the interrupt is checked
to be still pending once the claim is held, so a thread is resumed once whoever collected
the reply. A replica that loses the race leaves the reply to the winner and looks at the
thread again when the winner's claim would lapse (it crashed mid-resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import mailslot
from langgraph.types import Command, Interrupt
from mailslot.tasks import cancel_and_wait

from ._following import follow_paused
from .durable import is_mail_wait
from .envelope import decode_payload

log = logging.getLogger(__name__)


@dataclass
class Resumed:
    """One resume: which thread, by which reply, and what the graph returned (``GraphOutput``)
    or the error it raised."""

    thread_id: str
    correlation_id: str
    reply: Any
    output: Any = None
    error: BaseException | None = None
    interrupts: tuple[Interrupt, ...] = field(default=())


def _config(thread: str | dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(thread, dict):
        return thread
    cfg = dict(base or {})
    cfg["configurable"] = {**cfg.get("configurable", {}), "thread_id": thread}
    return cfg


class Resumer:
    """Resume threads of ``graph`` (compiled with a checkpointer) when their replies arrive
    in ``mailbox``. Use as ``async with Resumer(graph, mb, context=ctx) as r:``.

    ``context`` is passed to every resumed run (e.g. ``MailContext(mailbox=mb)``);
    ``on_resumed`` is called with each :class:`Resumed`. ``follow=True`` calls
    :meth:`follow` on entering. ``claim_ttl`` (seconds) bounds how long a replica that died
    mid-resume keeps the others off the thread; ``rescan_interval`` is used only by
    :meth:`follow` on a checkpointer that cannot push (not a MailslotCheckpointer).
    """

    def __init__(
        self,
        graph: Any,
        mailbox: mailslot.Mailbox,
        *,
        context: Any = None,
        config: dict[str, Any] | None = None,
        decode: Callable[[mailslot.Message], Any] = decode_payload,
        on_resumed: Callable[[Resumed], Awaitable[None] | None] | None = None,
        follow: bool = False,
        claim_ttl: float = 60.0,
        rescan_interval: float = 5.0,
    ) -> None:
        self.graph = graph
        self.mailbox = getattr(mailbox, "aio", mailbox)
        self.context = context
        self.config = config
        self.decode = decode
        self.on_resumed = on_resumed
        self.results: asyncio.Queue[Resumed] = asyncio.Queue()
        self._waits: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._follow = follow
        self._following: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self.claim_ttl = claim_ttl
        self.rescan_interval = rescan_interval
        self.holder = f"resumer-{uuid.uuid4().hex[:12]}"

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Resumer:
        if self._follow:
            await self.follow()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop waiting (pending replies stay in the mailbox for the next resumer)."""
        self._closed = True
        for h in self._timers:
            h.cancel()
        self._timers.clear()
        # Cancelled again until they end: a receive can swallow one cancel (mailslot.tasks).
        await cancel_and_wait(list(self._waits.values()) + list(self._tasks))
        self._waits.clear()

    @property
    def waiting(self) -> list[tuple[str, str]]:
        """(thread id, correlation id) of every wait being watched."""
        return [(t, c) for (t, c), task in self._waits.items() if not task.done()]

    # -- finding waits ---------------------------------------------------------------------------

    async def watch(self, thread: str | dict[str, Any]) -> int:
        """Start waiting for the replies this thread's pending interrupts expect; returns how
        many new waits were started."""
        if self._closed:
            raise RuntimeError("this Resumer is closed")
        cfg = _config(thread, self.config)
        tid = str(cfg["configurable"]["thread_id"])
        state = await self.graph.aget_state(cfg)
        return self._watch_interrupts(tid, cfg, state.interrupts)

    def _watch_interrupts(self, tid: str, cfg: dict[str, Any], interrupts: Any) -> int:
        started = 0
        for intr in interrupts or ():
            if not is_mail_wait(intr.value):
                continue
            cid = str(intr.value["correlation_id"])
            key = (tid, cid)
            if key in self._waits and not self._waits[key].done():
                continue
            self._waits[key] = asyncio.create_task(self._await(tid, cfg, cid, intr))
            started += 1
        return started

    async def scan(self) -> int:
        """Watch every thread in the graph's checkpointer; returns the number of new waits."""
        cp = self.graph.checkpointer
        threads: list[str] = []
        try:
            async for tup in cp.alist(None):
                threads.append(str(tup.config["configurable"]["thread_id"]))
        except NotImplementedError:
            found = await asyncio.to_thread(lambda: list(cp.list(None)))
            threads = [str(t.config["configurable"]["thread_id"]) for t in found]
        total = 0
        for tid in dict.fromkeys(threads):
            total += await self.watch(tid)
        return total

    async def follow(self) -> int:
        """Keep watching threads that pause from now on, in any process (no restart, no
        polling on a MailslotCheckpointer), then :meth:`scan` for those already paused;
        returns the scan's count. Idempotent."""
        if self._closed:
            raise RuntimeError("this Resumer is closed")
        if self._following is None:
            ready = asyncio.Event()
            self._following = self._spawn(follow_paused(self, ready))
            waiter = asyncio.ensure_future(ready.wait())
            await asyncio.wait({waiter, self._following}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if self._following.done():
                self._following.result()  # it failed: say why
        return await self.scan()

    def _spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def _look_again(self, tid: str, delay: float) -> None:
        """Watch ``tid`` again in ``delay`` seconds (a claim another replica holds lapses)."""

        def fire() -> None:
            self._timers.discard(handle)
            if not self._closed:
                self._spawn(self._watch_quietly(tid))

        handle = asyncio.get_running_loop().call_later(max(delay, 0.1), fire)
        self._timers.add(handle)

    async def _watch_quietly(self, tid: str) -> None:
        try:
            await self.watch(tid)
        except Exception:
            log.exception("watching thread %s failed", tid)

    async def ainvoke(self, input: Any, config: dict[str, Any], **kwargs: Any) -> Any:
        """Run the graph (``version="v2"``) and watch the mail waits it ends paused on."""
        kwargs.setdefault("context", self.context)
        out = await self.graph.ainvoke(input, config, version="v2", **kwargs)
        self._watch_interrupts(str(config["configurable"]["thread_id"]), config, out.interrupts)
        return out

    # -- resuming ---------------------------------------------------------------------------------

    async def _await(self, tid: str, cfg: dict[str, Any], cid: str, intr: Interrupt) -> None:
        try:
            # keep=True: the reply is deleted only by the ack after a successful resume, so a
            # crash or a failed resume leaves it to be collected again.
            reply = await self.mailbox.reply_for(cid, keep=True)
        except mailslot.MailslotError as exc:  # e.g. the mailbox was closed under us
            log.warning("waiting for reply %s of thread %s failed: %s", cid, tid, exc)
            self.results.put_nowait(Resumed(thread_id=tid, correlation_id=cid, reply=None, error=exc))
            return
        try:
            value = self.decode(reply)
        except mailslot.MailslotError as exc:
            # A reply that cannot be decoded never will be: report it and discard it, so a
            # corrected reply to the same request can resume the thread.
            log.warning("reply %s of thread %s is invalid: %s", cid, tid, exc)
            await reply.ack()
            self.results.put_nowait(Resumed(thread_id=tid, correlation_id=cid, reply=None, error=exc))
            return
        res = Resumed(thread_id=tid, correlation_id=cid, reply=value)
        lock = self._locks.setdefault(tid, asyncio.Lock())
        async with lock:
            claim = await self._claim(tid, intr)
            if claim is None:
                return
            try:
                if not await self._still_waiting(cfg, intr.id):
                    # Resumed already (by another replica, with this reply): nothing to do.
                    with contextlib.suppress(mailslot.MailslotError):
                        await reply.ack()
                    return
                try:
                    out = await self.graph.ainvoke(
                        Command(resume={intr.id: value}), cfg, context=self.context, version="v2"
                    )
                except Exception as exc:  # the reply stays stored (not acked): report it
                    log.exception("resuming thread %s with reply %s failed", tid, cid)
                    res.error = exc
                else:
                    await reply.ack()
                    res.output = out
                    res.interrupts = tuple(out.interrupts)
                    self._watch_interrupts(tid, cfg, out.interrupts)
            finally:
                claim.cancel()
                with contextlib.suppress(BaseException):
                    await claim
        self.results.put_nowait(res)
        if self.on_resumed is not None:
            r = self.on_resumed(res)
            if asyncio.iscoroutine(r):
                await r

    def _claim_key(self, tid: str, intr: Interrupt) -> str:
        return f"mailslot-langgraph/resume/{tid}/{intr.id}"

    async def _claim(self, tid: str, intr: Interrupt) -> asyncio.Task[None] | None:
        """Claim the resume of (thread, interrupt) and keep the claim renewed until the
        returned task is cancelled (which releases it); None if another replica has it."""
        claims = self.mailbox.client.claims
        key = self._claim_key(tid, intr)
        try:
            await claims.claim(key, ttl=self.claim_ttl, holder=self.holder, reason="resuming")
        except mailslot.ClaimConflict as exc:
            lapse = min((c.expires_at.timestamp() for c in exc.claims), default=0.0)
            self._look_again(tid, lapse - time.time() + 0.5 if lapse else self.claim_ttl)
            return None
        except mailslot.MailslotError as exc:  # e.g. the broker is failing over: try later
            log.warning("claiming the resume of thread %s failed: %s", tid, exc)
            self._look_again(tid, min(self.claim_ttl, 5.0))
            return None

        async def hold() -> None:
            try:
                while True:
                    await asyncio.sleep(self.claim_ttl / 3)
                    await claims.renew(key, ttl=self.claim_ttl, holder=self.holder)
            finally:
                with contextlib.suppress(mailslot.MailslotError):
                    await claims.release(key, holder=self.holder)

        return asyncio.ensure_future(hold())

    async def _still_waiting(self, cfg: dict[str, Any], interrupt_id: str) -> bool:
        state = await self.graph.aget_state(cfg)
        return any(i.id == interrupt_id for i in state.interrupts or ())

    async def next_result(self, *, timeout: float | None = None) -> Resumed:
        """The next :class:`Resumed`, waiting up to ``timeout`` seconds."""
        return await asyncio.wait_for(self.results.get(), timeout)


async def resume_when_replied(
    graph: Any,
    mailbox: mailslot.Mailbox,
    thread: str | dict[str, Any],
    *,
    context: Any = None,
    timeout: float | None = None,
) -> Resumed:
    """One-shot: wait for the first reply one of the thread's mail waits expects, resume the
    thread with it, and return what happened (for scripts and tests)."""
    async with Resumer(graph, mailbox, context=context) as r:
        if await r.watch(thread) == 0:
            raise LookupError(f"thread {thread!r} is not waiting for mail")
        return await r.next_result(timeout=timeout)
