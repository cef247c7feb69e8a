"""The asker side of request/reply for an agent credential: replies through a consumer.

A tenant credential finds a reply on ``<address>._replies`` by stream sequence (direct get,
then delete). Those reads name the mailbox in the body, which no subject permission can
scope, so an agent credential may not make them. It pulls its replies instead through one
durable consumer filtered on ``mbox.*.<address>._replies``
(:func:`mailslot_broker.protocol.principals.reply_consumer_name`), whose name and filter the
server can check: a scan takes what waits, keeps the replies with the wanted correlation id
and gives the others back at once (``nak``); taking a reply acks it (removed from the
WorkQueue stream). ``reply_for(..., keep=True)`` is not available to an agent credential.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from mailslot_broker import protocol as p
from mailslot_broker.protocol import Header, principals
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ._replies import Reply, ReplyBox
from .errors import InvalidInput

if TYPE_CHECKING:
    from .mailbox import Mailbox

#: Replies pulled per request, and how long a pull waits for the server's answer.
_BATCH = 100
_PULL_TIMEOUT = 2.0


def is_agent(mailbox: Mailbox) -> bool:
    """Whether the mailbox's connection is an agent credential's (its mail is signed; a
    voucher's signer, :func:`mailslot.signing.vouch`, sits on a tenant credential)."""
    signer = mailbox._link.signer
    return signer is not None and not signer.vouching


class AgentReplyBox(ReplyBox):
    """:class:`ReplyBox` whose scan and take go through the agent's reply consumer."""

    def __init__(self, mailbox: Mailbox) -> None:
        super().__init__(mailbox)
        self._held: dict[int, Any] = {}
        self._psub: Any = None

    async def _pull_sub(self) -> Any:
        if self._psub is None:
            js = self._mb._link.js
            name = principals.reply_consumer_name(self._mb.address)
            await js.add_consumer(
                p.MAIL_STREAM,
                ConsumerConfig(
                    name=name,
                    durable_name=name,
                    description=f"Mailslot replies to {self._mb.address}",
                    filter_subject=principals.reply_filter(self._mb.address),
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.EXPLICIT,
                    ack_wait=30.0,
                    max_deliver=-1,
                    inactive_threshold=300.0,  # gone 5 min after the last ask
                    num_replicas=0,
                    metadata={p.CONSUMER_ADDRESS_METADATA: self.address},
                ),
            )
            self._psub = await js.pull_subscribe_bind(name, stream=p.MAIL_STREAM, inbox_prefix=None)
        return self._psub

    async def _scan(self, correlation_id: str) -> list[int]:
        psub = await self._pull_sub()
        others = []
        seen: set[int] = set()
        found: list[int] = []
        while True:
            try:
                msgs = await psub.fetch(_BATCH, timeout=_PULL_TIMEOUT)
            except Exception:  # nothing waiting (the fetch times out)
                break
            fresh = False
            for m in msgs:
                seq = int(m.metadata.sequence.stream)
                if seq in seen or seq in self._held:
                    others.append(m)
                    continue
                seen.add(seq)
                fresh = True
                if (m.headers or {}).get(Header.CORRELATION_ID) == correlation_id:
                    self._held[seq] = m
                    found.append(seq)
                else:
                    others.append(m)
            if not fresh or len(msgs) < _BATCH:
                break
        for m in others:  # not ours: back at once for whoever asks for them
            with contextlib.suppress(Exception):
                await m.nak()
        return found

    async def collect(self, correlation_id: str, *, keep: bool = False, **kw: Any) -> Reply:
        if keep:
            raise InvalidInput(
                "reply_for(keep=True) needs a tenant credential: an agent's replies are acked when taken"
            )
        return await super().collect(correlation_id, keep=keep, **kw)

    async def _take(self, seq: int, correlation_id: str, *, keep: bool = False) -> Reply | None:
        msg = self._held.pop(seq, None)
        if msg is None:  # a bell: pull it
            if seq not in await self._scan(correlation_id):
                return None
            msg = self._held.pop(seq)
        if (msg.headers or {}).get(Header.CORRELATION_ID) != correlation_id:
            await msg.nak()
            return None
        await msg.ack_sync()
        return Reply(msg, self._mb)

    async def close(self) -> None:
        for m in self._held.values():
            with contextlib.suppress(Exception):
                await m.nak()
        self._held.clear()
        if self._psub is not None:
            with contextlib.suppress(Exception):
                await self._psub.unsubscribe()
            self._psub = None
        await super().close()


__all__ = ["AgentReplyBox", "is_agent"]
