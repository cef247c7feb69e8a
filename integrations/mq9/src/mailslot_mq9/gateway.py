"""The gateway: one subscription to ``$mq9.AI.>`` in a queue group, each request served in its
own task (a long-poll FETCH must not hold up the others), every reply a JSON object.

Replicas hold no state of their own (see ``store.py``): start as many as wanted, in any
process, against the same account; each request is answered by one of them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import mailslot
from mailslot.natsio import NatsMsg, NatsSubscription
from mailslot.tasks import cancel_and_wait

from . import wire as w
from .agents import DEFAULT_AGENT_TTL, Agents
from .mail import Mail
from .store import Store

log = logging.getLogger("mailslot.mq9")

#: Requests served at once by one replica; more wait for a slot.
DEFAULT_CONCURRENCY = 256


class Gateway:
    """Serve mq9 on ``ms``'s account until closed. ``async with Gateway(ms):`` or
    ``await gw.start()`` / ``await gw.close()``."""

    def __init__(
        self,
        ms: mailslot.Mailslot,
        *,
        queue: str = w.QUEUE_GROUP,
        agent_ttl: float = DEFAULT_AGENT_TTL,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.ms = ms
        self.queue = queue
        store = Store(ms)
        self.mail = Mail(ms, store)
        self.agents = Agents(ms, store, ttl=agent_ttl)
        self._gate = asyncio.Semaphore(concurrency)
        self._sub: NatsSubscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Requests answered by this replica (tests and the bench read it).
        self.served = 0

    async def start(self) -> Gateway:
        if self._sub is None:
            self._sub = await self.ms.nc.subscribe(f"{w.PREFIX}.>", queue=self.queue, cb=self._on_msg)
            await self.ms.nc.flush()
        return self

    async def close(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except Exception as exc:  # the connection may be gone already
                log.debug("unsubscribe: %r", exc)
        await cancel_and_wait(list(self._tasks))  # a receive can swallow one cancel (mailslot.tasks)

    async def __aenter__(self) -> Gateway:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_msg(self, msg: NatsMsg) -> None:
        if not msg.reply:
            return  # mq9 is request/reply only: nobody would read an answer
        task = asyncio.ensure_future(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, msg: NatsMsg) -> None:
        async with self._gate:
            out = await self.answer(msg.subject, msg.data or b"", dict(msg.headers or {}))
            try:
                await self.ms.nc.publish(msg.reply, out)
                self.served += 1
            except Exception as exc:
                log.warning("reply to %s: %r", msg.subject, exc)

    async def answer(self, subject: str, data: bytes, headers: dict[str, str]) -> bytes:
        """The reply to one request: mq9's success shape or ``{"error": ...}``, never raising."""
        command, rest = w.split(subject)
        try:
            return await self._dispatch(command, rest, data, headers)
        except w.Mq9Error as exc:
            return w.error(str(exc))
        except mailslot.InvalidInput as exc:
            return w.error(f"invalid request: {exc}")
        except mailslot.MailslotError as exc:
            log.warning("%s: %r", subject, exc)
            return w.error(f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("%s failed", subject)
            return w.error(f"internal error: {type(exc).__name__}")

    async def _dispatch(self, command: str, rest: str, data: bytes, headers: dict[str, str]) -> bytes:
        if command == w.SEND:
            return await self.mail.send(rest, data, headers)
        if command == w.DELETE:
            return await self.mail.delete(rest)
        req: dict[str, Any] = w.body(data)
        if command == w.CREATE:
            return await self.mail.create(req)
        if command == w.FETCH:
            return await self.mail.fetch(rest, req)
        if command == w.ACK:
            return await self.mail.ack(rest, req)
        if command == w.QUERY:
            return await self.mail.query(rest, req)
        if command == w.REGISTER:
            return await self.agents.register(req)
        if command == w.UNREGISTER:
            return await self.agents.unregister(req)
        if command == w.REPORT:
            return await self.agents.report(req)
        if command == w.DISCOVER:
            return await self.agents.discover(req)
        raise w.Mq9Error(f"unknown command {command[:80]!r}")
