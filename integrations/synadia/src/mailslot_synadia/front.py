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
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from mailslot.natsio import NatsClient
from mailslot.natsio import NatsMsg as Msg
from mailslot.natsio import NatsSubscription as Subscription
from synadia_ai.agent_service import SenderGate
from synadia_ai.agent_service.heartbeat import build_heartbeat_payload
from synadia_ai.agents import (
    PROMPT_QUEUE_GROUP,
    STATUS_QUEUE_GROUP,
    AgentSubject,
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
from .errors import STOPPING, Refused

log = logging.getLogger(__name__)

ERROR_CODE = "Nats-Service-Error-Code"
ERROR_DESC = "Nats-Service-Error"

#: token -> mailbox address for the prompt subject's last token; None if no such mailbox.
Resolve = Callable[[str], Awaitable[str | None]]
#: address -> "online" (its lease lives) or "offline".
Presence = Callable[[str], str]
#: The ``instance_id`` of status replies the front gives (no ``AgentService`` instance behind).
FRONT_INSTANCE = "mailslot-bridge-front"


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
        presence: Presence,
        keepalive: float,
        heartbeat_interval: int,
        gate: SenderGate,
    ) -> None:
        self._nc = nc
        self._courier = courier
        self.agent, self.owner = agent, owner
        self.subject = f"agents.prompt.{agent}.{owner}.*"
        self.status_subject = f"agents.status.{agent}.{owner}.*"
        self._presence = presence
        self._interval = heartbeat_interval
        self._resolve = resolve
        self._keepalive = keepalive
        self._gate = gate
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._subs = [
            await self._nc.subscribe(self.subject, queue=PROMPT_QUEUE_GROUP, cb=self._on_msg),
            await self._nc.subscribe(self.status_subject, queue=STATUS_QUEUE_GROUP, cb=self._on_status),
        ]
        await self._nc.flush()

    async def close(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs = []
        await stop_tasks(self._tasks)

    async def _on_status(self, msg: Msg) -> None:
        """``status`` from presence: heartbeat-shaped, with ``mailslot.presence`` saying
        whether the agent's lease lives (a kept mailbox whose agent is away still answers)."""
        if not msg.reply:
            return
        token = msg.subject.rsplit(".", 1)[-1]
        address = await self._resolve(token)
        if address is None:
            await self._nc.publish(
                msg.reply, b"", headers={ERROR_CODE: "404", ERROR_DESC: f"unknown_agent: {msg.subject}"}
            )
            return
        subject = AgentSubject(agent=self.agent, owner=self.owner, session_name=token)
        extras = {"mailslot": {"address": address, "presence": self._presence(address)}}
        payload = build_heartbeat_payload(subject, self._interval, FRONT_INSTANCE, extras)
        await self._nc.publish(msg.reply, payload.model_dump_json().encode())

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
        except asyncio.CancelledError:  # the bridge stops: say so; the mail keeps waiting
            await stop_tasks([keepalive])
            with contextlib.suppress(Exception):
                await stream.error(STOPPING)
                await stream.publish(b"")
            raise
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
