"""The history half of a topic subscription with ``replay``: read the stored messages, then
switch to live without a gap or a duplicate, and catch up after a reconnect.

1. the subscription listens live first; what arrives is buffered here;
2. note the stream's last sequence ``L``;
3. deliver history up to ``L`` (a stored message past ``L`` is left to the live side);
4. drain the buffer, dropping republished (durable) messages whose ``Nats-Sequence`` is ``<= L``
   because history already delivered them, then deliver live messages as they come.

Steps 3 and 4 switch over without an ``await`` in between, so nothing can slip through.

Across a reconnect the live subscription is re-sent by nats-py. Ephemeral messages published
while the connection was down are gone (as with no subscriber); a subscription with ``replay``
also catches up on the durable messages it missed: it buffers live traffic from the moment the
connection drops and, once it is back, reads the stored history after the last durable message
it delivered, with the same switch-over. A history read interrupted by a reconnect resumes
after the last message it delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import nats.errors as nerr
from mailslot_broker import protocol as p
from mailslot_broker.protocol import Header
from mailslot_broker.tasks import cancel_and_wait
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy

from ._boundary import boundary
from .errors import Timeout
from .link import Link

Replay = Literal["all", "last"] | datetime | None
NATS_STREAM = "Nats-Stream"
#: A history read that received nothing for this long has stalled.
_HISTORY_STALL = 30.0

log = logging.getLogger("mailslot.broadcast")


class History:
    """Replay and catch-up for one subscription. ``deliver(msg, seq)`` hands a message on
    (``seq`` set when it came from history); ``fail(exc)`` an error of the first read."""

    def __init__(
        self,
        link: Link,
        pattern: str,
        replay: Literal["all", "last"] | datetime,
        *,
        deliver: Callable[[Msg, int | None], None],
        fail: Callable[[BaseException], None],
    ) -> None:
        self._link = link
        self.pattern = pattern
        self.replay = replay
        self._deliver = deliver
        self._fail = fail
        self._buffer: list[Msg] | None = []  # live messages held back while history is read
        self._threshold = 0  # live durable messages with seq <= this were replayed already
        self._seen = 0  # the highest history sequence delivered, live or replayed
        self._hist_done = 0  # the last sequence the current history read delivered
        self._gap_after: int | None = None  # catch up after this on reconnect
        self._task: asyncio.Task[None] | None = None
        #: Counters: messages delivered from history, live duplicates of history dropped.
        self.replayed = 0
        self.skipped = 0

    def start(self) -> None:
        """Read the history (in the background); live messages wait in the buffer."""
        self._task = asyncio.create_task(self._replay(), name=f"replay:{self.pattern}")

    async def close(self) -> None:
        await cancel_and_wait([self._task])

    # -- live messages -------------------------------------------------------------------------

    def on_live(self, msg: Msg) -> None:
        if self._buffer is not None:
            self._buffer.append(msg)
        else:
            self._deliver_live(msg)

    def _fresh(self, msg: Msg) -> bool:
        """False for a republished durable message that history already delivered."""
        h = msg.headers or {}
        if self._threshold and NATS_STREAM in h:
            with contextlib.suppress(ValueError):
                if int(h.get(Header.NATS_SEQUENCE, "0")) <= self._threshold:
                    self.skipped += 1
                    return False
        return True

    def _deliver_live(self, msg: Msg) -> None:
        if not self._fresh(msg):
            return
        if msg.headers and NATS_STREAM in msg.headers:
            with contextlib.suppress(ValueError):
                self._seen = max(self._seen, int(msg.headers.get(Header.NATS_SEQUENCE, "0")))
        self._deliver(msg, None)

    # -- reconnects ------------------------------------------------------------------------------

    def connection_lost(self) -> None:
        if self._buffer is not None:
            return  # a history read is running (it resumes by itself)
        # Buffer what the reconnected subscription delivers until the gap is filled.
        self._gap_after = max(self._seen, self._threshold)
        self._buffer = []

    def connection_back(self) -> None:
        if self._gap_after is None or (self._task is not None and not self._task.done()):
            return
        after, self._gap_after = self._gap_after, None
        self._task = asyncio.create_task(self._replay(after), name=f"catch-up:{self.pattern}")

    # -- reading the history -------------------------------------------------------------------

    async def _replay(self, after: int | None = None) -> None:
        """Deliver history, then switch to live. With ``after`` (a catch-up after a
        reconnect): the stored messages after that sequence."""
        threshold = self._threshold
        try:
            await self._read_history(after)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Live duplicates are dropped only up to what history did deliver.
            self._threshold = max(threshold, self._hist_done)
            if after is None:
                self._fail(exc)
            else:
                log.warning("catching up on %s after a reconnect failed: %r", self.pattern, exc)
        finally:
            # Switch to live in one step (no await): buffered first, then the callback directly.
            if self._gap_after is None:  # (else the connection dropped again: keep buffering)
                buffered, self._buffer = self._buffer or [], None
                for msg in buffered:
                    self._deliver_live(msg)

    def _history_config(self, after: int | None) -> ConsumerConfig:
        cfg = ConsumerConfig(filter_subject=p.durable_topic_subject(self.pattern))
        if after is not None:
            cfg.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            cfg.opt_start_seq = after + 1
        elif self.replay == "all":
            cfg.deliver_policy = DeliverPolicy.ALL
        elif self.replay == "last":
            cfg.deliver_policy = DeliverPolicy.LAST_PER_SUBJECT
        else:
            assert isinstance(self.replay, datetime)
            cfg.deliver_policy = DeliverPolicy.BY_START_TIME
            cfg.opt_start_time = self.replay
        return cfg

    async def _read_history(self, after: int | None = None) -> None:
        link = self._link
        with boundary():
            info = await link.js.stream_info(p.TOPICS_STREAM)
        last = int(info.state.last_seq or 0)
        self._threshold = max(self._threshold, last)
        self._hist_done = after or 0
        if last <= self._hist_done:
            return
        cfg = self._history_config(after)
        while True:
            epoch = link.reconnects
            if await self._read_history_once(copy.copy(cfg), last, epoch):
                return
            # Interrupted by a reconnect: read again (same start), skipping what was delivered.
            with boundary():
                await link.until_connected(link.receive_outage_timeout)

    async def _read_history_once(self, cfg: ConsumerConfig, last: int, epoch: int) -> bool:
        """One ordered consumer over the history up to ``last``; False if a reconnect
        interrupted it."""
        link = self._link

        def interrupted() -> bool:
            return link.reconnects != epoch or not link.nc.is_connected

        hist: Any = None
        try:
            try:
                with boundary():
                    hist = await link.js.subscribe(
                        p.durable_topic_subject(self.pattern),
                        stream=p.TOPICS_STREAM,
                        config=cfg,
                        ordered_consumer=True,
                        inactive_threshold=30.0,
                    )
                    ci = await hist.consumer_info()
            except Exception:
                if interrupted():
                    return False
                raise
            # Nothing matched if the server has neither pending nor already pushed messages
            # (pushed ones may still sit unread in the subscription's queue).
            pushed = ci.delivered.consumer_seq if ci.delivered is not None else 0
            if not ci.num_pending and not pushed and not hist.delivered:
                return True
            stalled_at = time.monotonic() + _HISTORY_STALL
            while True:
                try:
                    # In short steps, to notice a reconnect (the ordered consumer's memory
                    # state died with a restarted server).
                    msg = await hist.next_msg(timeout=1.0)
                except nerr.TimeoutError:
                    if interrupted():
                        return False
                    if time.monotonic() < stalled_at:
                        continue
                    raise Timeout(f"replay of {self.pattern} stalled") from None
                except Exception as exc:
                    if interrupted():
                        return False
                    raise Timeout(f"replay of {self.pattern} stalled") from exc
                stalled_at = time.monotonic() + _HISTORY_STALL
                meta = msg.metadata
                seq = meta.sequence.stream
                if seq <= self._hist_done:
                    # nats-py's ordered consumer may restart from an earlier sequence after a
                    # reset (seen under load: 0, 1, 0, 1, 2, ...), and a read resumed after a
                    # reconnect starts over: never deliver twice.
                    if meta.num_pending == 0:
                        return True
                    continue
                if seq > last:
                    return True  # stored after the snapshot: the live side delivers it
                self._deliver(msg, seq)
                self.replayed += 1
                self._hist_done = seq
                self._seen = max(self._seen, seq)
                if seq == last or meta.num_pending == 0:
                    return True
        finally:
            if hist is not None:
                with contextlib.suppress(Exception):
                    await hist.unsubscribe()


__all__ = ["NATS_STREAM", "History", "Replay"]
