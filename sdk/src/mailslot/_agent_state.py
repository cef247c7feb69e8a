"""The state store of an agent credential: ``ms.state(ns)`` on the agent's own part of the bucket.

Why it differs from a tenant's store. An agent credential may use only what a subject
permission can confine to it (``protocol.principals``), and a KV bucket takes ``Nats-Rollup``
headers, which no permission stops: a credential allowed to publish one key of
``MAILSLOT_STATE`` could roll the whole bucket up. So, as with its lease
(``protocol.agent_writes``):

* **Where.** Its namespaces live under its scope, ``=agent.<b64(address)>.<ns>.<segments>``
  (``protocol.state.agent_state_scope``): the address is one token, so no agent's scope is a
  prefix of another's, and ``=`` is in no namespace, so no tenant namespace overlaps it. The
  permissions name that scope and nothing else.
* **Writes** go to ``kvup.MAILSLOT_STATE.<kv key>`` in ``MAILSLOT_AGENT_WRITES`` (no rollups,
  one message per subject, per-message TTLs), which the bucket sources back to
  ``$KV.MAILSLOT_STATE.<kv key>``. A delete is a purge marker without ``Nats-Rollup``.
* **Revisions** are the writes stream's: :meth:`get` is a last-by-subject direct get there,
  and ``expect_revision`` is ``Nats-Expected-Last-Subject-Sequence`` there, so two writers
  racing on a key cannot both win, as in a tenant's store.
* **Listing and watching** (:meth:`items`, :meth:`keys`, :meth:`purge`, :meth:`watch`) use a
  push consumer of the bucket, named here, whose filter (in the ``CONSUMER.CREATE`` subject)
  lies in the scope, delivered to the agent's own inbox; no body-addressed read
  (``multi_last``) is allowed. The revision each message reports is the writes stream's,
  from the sourced copy's ``Nats-Stream-Source`` header, and a key whose TTL ran out reaches
  a watch as deleted (the bucket's limit marker; revision 0, as the writes stream then holds
  nothing for it, so ``expect_revision=0`` creates it again). The bucket is a copy that
  trails the writes stream by a sourcing hop, so a listing (and a watch) first waits until
  the bucket has the namespace's latest write in the writes stream, whoever made it: it
  sees every write acknowledged before it began, as with a tenant's store. A bucket that
  does not catch up (it is not sourcing the writes stream) is :class:`~mailslot.Unavailable`,
  never a stale listing.

A tenant credential reads and writes an agent's state with ``ms.state(ns, agent=address)``:
this same store, with the same revisions. ``ms.state(ns)`` on a tenant credential is
unchanged (:class:`mailslot.state.StateStore`).
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from datetime import datetime, timezone
from typing import Any

from mailslot_broker import natscompat
from mailslot_broker import protocol as p
from mailslot_broker.kvscan import KvItem
from mailslot_broker.protocol import state as pstate
from nats.aio.msg import Msg
from nats.js import errors as jserr
from nats.js.kv import KeyValue

from ._agent_state_watch import AgentStateWatch, _Feed, _operation, _revision
from ._boundary import boundary, checking
from ._state_types import StateEntry
from .errors import Timeout, Unavailable
from .link import Link
from .state import DELETE_MARKER_TTL, StateStore, StateWatch

_AW = p.agent_writes
_BUCKET_STREAM = p.kv_stream(p.STATE_BUCKET)
#: How long a listing waits for the bucket to have the namespace's latest write (a sourcing hop
#: takes about a millisecond; past this it raises Unavailable rather than list a stale copy).
CATCH_UP = 5.0
_PROVISION = (
    "A tenant whose agents were issued before agent state gets that sourcing at its next "
    "tenant connect: connect once with the tenant credential to provision it."
)
_NOT_SOURCED = (
    f"the state bucket ({_BUCKET_STREAM}) is not sourcing the agent writes stream "
    f"({_AW.AGENT_WRITES_STREAM}), so it has none of the agents' state writes. {_PROVISION}"
)
#: How long a listing waits for the messages its consumer announced.
LIST_TIMEOUT = 10.0


def open_state(
    link: Link, namespace: str, *, agent: str | None, watches: weakref.WeakSet[Any] | None
) -> StateStore:
    """``ms.state(namespace, agent=...)``: an agent credential's own state (or, with
    ``agent``, another agent's, which the server refuses it); a tenant credential's
    namespaces, or with ``agent`` that agent's state."""
    who = agent if agent is not None else link.agent
    if who is None:
        return StateStore(link, namespace, watches=watches)
    return AgentStateStore(link, namespace, agent=who, watches=watches)


class AgentStateStore(StateStore):
    """:class:`~mailslot.state.StateStore` on ``agent``'s part of the bucket (see the module)."""

    def __init__(
        self, link: Link, namespace: str, *, agent: str, watches: weakref.WeakSet[Any] | None = None
    ) -> None:
        super().__init__(link, namespace, watches=watches)
        with checking():
            self.agent = p.validate_address(agent)
        self._scope = pstate.agent_state_scope(self.agent)

    def __repr__(self) -> str:
        return f"StateStore({self.namespace!r}, agent={self.agent!r})"

    def _subject(self, kv_key: str) -> str:
        return _AW.agent_write_subject(p.STATE_BUCKET, kv_key)

    async def _bucket(self) -> KeyValue:
        """The writes stream, as a KV handle: what compare-and-set writes go through. Made
        with the agent writes stream when a credential is issued (an agent cannot create it)."""
        if self._kv is None:
            self._kv = natscompat.kv_handle(
                self._link.js,
                bucket=p.STATE_BUCKET,
                stream=_AW.AGENT_WRITES_STREAM,
                prefix=_AW.agent_write_prefix(p.STATE_BUCKET),
            )
        return self._kv

    async def _read(self, kv_key: str, *, deleted: bool = False) -> KvItem | None:
        subject = self._subject(kv_key)
        js = self._link.js
        with boundary():
            try:
                msg = await self._ride_out(
                    lambda: js.get_last_msg(_AW.AGENT_WRITES_STREAM, subject, direct=True)
                )
            except jserr.NotFoundError:
                return None
        op = _operation(msg.headers)
        if op is not None and not deleted:
            return None
        return KvItem(kv_key, msg.data or b"", int(msg.seq or 0), msg.time, op)

    async def _drop(self, kv_key: str, last: int | None) -> bool:
        headers = p.delete_headers(last, rollup=False)
        with boundary():
            try:
                await self._link.js.publish(
                    self._subject(kv_key), b"", headers=headers, msg_ttl=DELETE_MARKER_TTL
                )
            except jserr.APIError as exc:
                if p.jsapi.is_wrong_last_sequence(exc):
                    return False
                raise
        return True

    async def _caught_up(self) -> None:
        """Wait until the bucket has the namespace's latest write: the last-by-subject direct
        get of ``<scope>.<ns>.>`` in the writes stream names it, whoever wrote it, and sourced
        copies arrive in order, so once the bucket has that one it has every earlier one.

        :class:`Unavailable` if it has not after :data:`CATCH_UP` (a listing of what the
        bucket holds would be stale, and a purge would undercount): the usual cause is a
        bucket that does not source the writes stream (a tenant whose agents predate agent
        state, until its next tenant connect provisions it). A tenant credential, which may
        read the bucket's config, checks that at the first miss and fails at once."""
        js = self._link.js
        pattern = self._subject(f"{self._scope}.{self.namespace}.>")
        with boundary():
            try:
                latest = await self._ride_out(
                    lambda: js.get_last_msg(_AW.AGENT_WRITES_STREAM, pattern, direct=True)
                )
            except jserr.NotFoundError:
                return
        head = _AW.agent_write_prefix(p.STATE_BUCKET)
        subject = p.kv_subject(p.STATE_BUCKET, str(latest.subject)[len(head) :])
        revision = int(latest.seq or 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CATCH_UP
        delay = 0.001
        checked = self._link.agent is not None  # an agent may not read the bucket's config
        while True:
            with boundary():
                try:
                    msg = await js.get_last_msg(_BUCKET_STREAM, subject, direct=True)
                    seen = _AW.written_revision(msg.headers)
                    if seen is None or seen >= revision:  # there (or expired there since)
                        return
                except jserr.NotFoundError:
                    pass
                if not checked:
                    checked = True
                    if not await self._sourced():
                        raise Unavailable(_NOT_SOURCED)
            if loop.time() >= deadline:
                raise Unavailable(
                    f"the state bucket has not caught up with the agent writes stream in "
                    f"{CATCH_UP:g} s (it lacks revision {revision} of namespace "
                    f"{self.namespace!r}): is {_BUCKET_STREAM} sourcing {_AW.AGENT_WRITES_STREAM}? "
                    f"{_PROVISION}"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _sourced(self) -> bool:
        """Whether the state bucket sources the writes stream (a tenant credential's check)."""
        info = await self._ride_out(lambda: self._link.js.stream_info(_BUCKET_STREAM))
        return any(src.name == _AW.AGENT_WRITES_STREAM for src in info.config.sources or [])

    async def _scan(self, prefix: Any) -> dict[str, StateEntry]:
        filters = self._filters(prefix)
        await self._caught_up()
        out: dict[str, StateEntry] = {}
        for pattern in filters:
            for msg in await self._ride_out(functools.partial(self._last_values, pattern)):
                kv_key = msg.subject[len(p.kv_subject(p.STATE_BUCKET, "")) :]
                key = pstate.state_key_of(self.namespace, kv_key, scope=self._scope)
                if key is None or _operation(msg.headers):
                    continue
                at = msg.metadata.timestamp or datetime.now(timezone.utc)
                out[kv_key] = StateEntry(key, msg.data or b"", _revision(msg), at)
        return out

    async def _last_values(self, pattern: str) -> list[Msg]:
        """The last message of every key matching ``pattern``, through a consumer made for it."""
        got: list[Msg] = []
        enough = asyncio.Event()
        feed = _Feed(self._link, pattern)

        async def on_msg(msg: Msg) -> None:
            got.append(msg)
            if feed.initial and len(got) >= feed.initial:
                enough.set()

        try:
            with boundary():
                await feed.open(on_msg, existing=True)
            if len(got) >= feed.initial:
                enough.set()
            try:
                await asyncio.wait_for(enough.wait(), LIST_TIMEOUT)
            except asyncio.TimeoutError:
                raise Timeout(
                    f"listing state under {pattern!r} did not finish in {LIST_TIMEOUT:g} s"
                ) from None
        finally:
            await feed.close()
        got.sort(key=lambda m: m.metadata.sequence.consumer)
        return got[: feed.initial]

    def watch(self, prefix: Any = (), *, include_existing: bool = False) -> StateWatch:
        filters = self._filters(prefix)
        watch = AgentStateWatch(self, filters, include_existing=include_existing)
        if self._watches is not None:
            self._watches.add(watch)
        return watch


__all__ = ["AgentStateStore", "open_state"]
