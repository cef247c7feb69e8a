"""The receive loop's pulls at the server: one active pull at a time, and idle waiting pulls.

A pull is a request on the consumer's ``$JS.API.CONSUMER.MSG.NEXT`` subject whose replies
(mail, then a status) come to the mailbox's inbox, ``<inbox>.<token>``. While the mailbox is
idle one waiting pull per level stays at the server, so new and redelivered mail is pushed
without a round trip after the bell; mail such a pull delivers goes straight to the buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from nats.aio.msg import Msg

from ._receive_failover import NoAnswer, refusal
from .link import Link
from .message import Message

#: How long the reply to a pull may take, beyond its own expiry, before the pull counts as
#: unanswered (its leader died with the request, or the cluster still routes to it). Asked
#: again soon, so a reply slower than this costs a repeated pull, not a message.
_PULL_REPLY_TIMEOUT = 2.0

#: Put on the reply queue to end a pull whose reply cannot come any more (connection lost).
_ABORT = natscompat.marker_msg(headers={"Status": "000"})


class ReceiveHost(Protocol):
    """What the receive loop needs from the mailbox that owns it: its settings (read at use:
    ``open()`` sets them after construction), whether it may still receive, and ways to
    create a level's consumer and to bring lost ones back. The server it reaches through the
    mailbox's :class:`Link`."""

    @property
    def address(self) -> str: ...
    @property
    def policy(self) -> p.RetryPolicy: ...
    @property
    def heartbeat(self) -> float: ...
    @property
    def closed(self) -> bool: ...
    def _check_usable(self) -> None: ...
    async def _add_consumers(self, levels: Iterable[p.Priority], *, patience: float = 0.0) -> None: ...
    async def _ensure_consumers(self) -> None: ...


class Pulls:
    """The pulls of one mailbox. ``on_mail`` takes mail an idle pull delivered, ``on_level``
    hears of a level whose idle pull ended early (refused, or a leadership change: mail may
    wait there that nobody will push)."""

    def __init__(
        self,
        host: ReceiveHost,
        *,
        link: Link,
        wrap: Callable[[Msg], Message],
        on_mail: Callable[[Message], None],
        on_level: Callable[[p.Priority], None],
    ) -> None:
        self._host = host
        self._link = link
        self._wrap = wrap
        self._on_mail = on_mail
        self._on_level = on_level
        #: The reply subject prefix of our pulls (``<inbox>.<token>``); set when subscribed.
        self.inbox = ""
        #: The idle pull waiting at the server per level: its token and when it expires.
        self.waiting: dict[p.Priority, tuple[str, float]] = {}
        #: Pull requests sent (for tests and measurements: an idle mailbox sends none).
        self.count = 0
        self._replies: asyncio.Queue[Msg] = asyncio.Queue()
        self._current_token: str | None = None
        self._tokens = itertools.count()

    def abort(self) -> None:
        """End the pull in flight now: its reply cannot come."""
        if self._current_token is not None:
            self._replies.put_nowait(_ABORT)

    async def on_reply(self, msg: Msg) -> None:
        """A reply to one of our pulls (the inbox subscription's callback)."""
        # Active pulls are sequential (under the receive lock), so everything arriving while
        # one runs is handed to it; JetStream delivers mail with its own subject, and only
        # status replies carry the request's token. Mail arriving between pulls comes from an
        # idle waiting pull (or a pull we stopped waiting for): it is ours to deliver.
        status = msg.headers.get("Status") if msg.headers else None
        token = msg.subject.rsplit(".", 1)[-1]
        if status:
            if token == self._current_token:
                self._replies.put_nowait(msg)
            else:
                for prio, (wtoken, _) in list(self.waiting.items()):
                    if wtoken == token:  # an idle pull ended
                        del self.waiting[prio]
                        if status not in ("404", "408"):  # not its expiry
                            self._on_level(prio)
            return
        with contextlib.suppress(ValueError, IndexError):
            self.waiting.pop(p.parse_mail_subject(msg.subject)[0], None)
        if self._current_token is not None:
            self._replies.put_nowait(msg)
        else:
            self._on_mail(self._wrap(msg))

    async def arm_idle(self, levels: Iterable[p.Priority]) -> None:
        """While idle, keep one waiting pull per bound level at the server. They expire after
        ``heartbeat``; ``close()`` drops them at once, because the server forgets pull
        requests whose reply subject lost its subscriber."""
        now = time.monotonic()
        heartbeat, nc = self._host.heartbeat, self._link.nc
        for prio in sorted(levels):
            if not nc.is_connected:
                return  # they would die with the connection; re-armed once it is back
            current = self.waiting.get(prio)
            if current is not None and current[1] > now:
                continue
            token = f"w{next(self._tokens)}"
            self.waiting[prio] = (token, now + heartbeat)
            body = json.dumps(p.pull_request(batch=1, expires=heartbeat)).encode()
            self.count += 1
            await nc.publish(
                p.pull_subject(p.MAIL_STREAM, p.consumer_name(self._host.address, prio)),
                body,
                reply=f"{self.inbox}.{token}",
            )

    async def pull(
        self, prio: p.Priority, batch: int, *, expires: float | None = None, deadline: float | None = None
    ) -> tuple[list[Message], NoAnswer | None]:
        """No-wait pull of up to ``batch`` messages (or a pull that waits up to ``expires``):
        what came, and None if the level answered (an empty list then means it has no
        deliverable mail), else why it did not finish answering. Mail of other levels may
        come along (late replies to earlier pulls, idle pulls). No reply is waited for beyond
        ``deadline`` (the receive's: ``receive(timeout=t)`` returns within about t)."""
        token = str(next(self._tokens))
        consumer = p.consumer_name(self._host.address, prio)
        body = json.dumps(p.pull_request(batch=batch, no_wait=expires is None, expires=expires)).encode()
        nc = self._link.nc
        if self._host.closed or not nc.is_connected:
            return [], NoAnswer.UNANSWERED  # no answer could come
        out: list[Message] = []
        answer: NoAnswer | None = None
        self._current_token = token
        try:
            self.count += 1
            await nc.publish(p.pull_subject(p.MAIL_STREAM, consumer), body, reply=f"{self.inbox}.{token}")
            wait = (expires or 0.0) + _PULL_REPLY_TIMEOUT
            if deadline is not None:
                wait = min(wait, max(deadline - time.monotonic(), 0.05))
            while len(out) < batch:
                if not self._replies.empty():
                    msg = self._replies.get_nowait()
                else:
                    try:
                        msg = await asyncio.wait_for(self._replies.get(), wait)
                    except asyncio.TimeoutError:
                        answer = NoAnswer.UNANSWERED
                        break
                if msg is _ABORT:
                    answer = NoAnswer.UNANSWERED
                    break
                status = msg.headers.get("Status") if msg.headers else None
                if status:
                    answer = refusal(status, (msg.headers or {}).get("Description") or "")
                    break
                out.append(self._wrap(msg))
        finally:
            self._current_token = None
            while not self._replies.empty():  # deliveries that raced the status reply
                late = self._replies.get_nowait()
                if late is not _ABORT and not (late.headers and late.headers.get("Status")):
                    out.append(self._wrap(late))
        return out, answer
