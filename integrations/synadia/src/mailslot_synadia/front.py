"""The prompt path for mailboxes whose agent is offline (and a share of the others): one
subscription on ``agents.prompt.<agent>.<owner>.*`` in the protocol's queue group ``agents``.

While a Mailslot agent's lease lives it has an ``AgentService`` of its own (registration,
heartbeats, status); when the lease lapses that service goes, and with it the heartbeats, but
its prompt subject must still answer: a prompt to an offline agent becomes mail that waits.
This subscription answers it the way the protocol host does (leading ack, keep-alive acks,
chunks, error frame, terminator). NATS hands each prompt to one member of a queue group whatever
subject each member subscribed, so while the agent's own service is up the two share its
prompts; both go through the same :class:`~mailslot_synadia.courier.Courier`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from synadia_ai.agent_service import SenderGate
from synadia_ai.agents import (
    PROMPT_QUEUE_GROUP,
    Envelope,
    ProtocolError,
    QueryChunk,
    ResponseChunk,
    StatusChunk,
    decode,
)
from synadia_ai.agents.messages import encode_chunk

from ._tasks import stop_tasks
from .courier import Courier
from .errors import Refused

log = logging.getLogger(__name__)

ERROR_CODE = "Nats-Service-Error-Code"
ERROR_DESC = "Nats-Service-Error"

#: token -> mailbox address for the prompt subject's last token; None if no such mailbox.
Resolve = Callable[[str], Awaitable[str | None]]


class _RawStream:
    """A prompt stream over a plain reply subject (the front's, not an ``AgentService``'s)."""

    def __init__(self, nc: NatsClient, reply: str) -> None:
        self._nc = nc
        self._reply = reply

    async def publish(self, data: bytes, headers: dict[str, str] | None = None) -> None:
        await self._nc.publish(self._reply, data, headers=headers)

    async def send(self, chunk: str) -> None:
        await self.publish(encode_chunk(ResponseChunk(text=chunk)))

    async def ask(self, prompt: str, *, timeout: float) -> Envelope:
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, max_msgs=1)
        try:
            await self.publish(
                encode_chunk(QueryChunk(id=uuid.uuid4().hex, reply_subject=inbox, prompt=prompt))
            )
            msg = await sub.next_msg(timeout=timeout)
            return decode(msg.data)
        finally:
            await sub.unsubscribe()

    async def error(self, refused: Refused) -> None:
        await self.publish(
            json.dumps(refused.body()).encode(),
            {ERROR_CODE: str(refused.code), ERROR_DESC: refused.description},
        )


class Front:
    """Answers prompts on ``agents.prompt.<agent>.<owner>.*`` for the bridge's mailboxes."""

    def __init__(
        self,
        nc: NatsClient,
        courier: Courier,
        *,
        agent: str,
        owner: str,
        resolve: Resolve,
        keepalive: float,
        gate: SenderGate,
    ) -> None:
        self._nc = nc
        self._courier = courier
        self.subject = f"agents.prompt.{agent}.{owner}.*"
        self._resolve = resolve
        self._keepalive = keepalive
        self._gate = gate
        self._sub: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self.subject, queue=PROMPT_QUEUE_GROUP, cb=self._on_msg)
        await self._nc.flush()

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        await stop_tasks(self._tasks)

    async def _on_msg(self, msg: Msg) -> None:
        if not msg.reply:
            return
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, msg: Msg) -> None:
        stream = _RawStream(self._nc, msg.reply)
        keepalive: asyncio.Task[None] | None = None
        try:
            address = await self._resolve(msg.subject.rsplit(".", 1)[-1])
            if address is None:
                raise Refused(404, "unknown_agent", f"no Mailslot mailbox behind {msg.subject}")
            try:
                envelope = decode(msg.data)
            except ProtocolError as exc:
                raise Refused(400, "bad_request", str(exc)) from None
            admission = await self._gate.admit_prompt(msg)
            if admission.rejection is not None:
                r = admission.rejection
                raise Refused(r.code, "sender_rejected", r.description)
            await stream.publish(encode_chunk(StatusChunk(status="ack")))
            keepalive = asyncio.create_task(self._keep_alive(stream))
            await self._courier.prompt(
                address, envelope, stream, sender=admission.sender, subject=msg.subject
            )
        except Refused as refused:
            await stop_tasks([keepalive])
            await stream.error(refused)
        except Exception:
            log.exception("prompt on %s", msg.subject)
            await stop_tasks([keepalive])
            await stream.error(Refused(500, "bridge_error", "bridge error"))
        finally:
            await stop_tasks([keepalive])
            await stream.publish(b"")  # the terminator: no body, no headers

    async def _keep_alive(self, stream: _RawStream) -> None:
        ack = encode_chunk(StatusChunk(status="ack"))
        while True:
            await asyncio.sleep(self._keepalive)
            await stream.publish(ack)
