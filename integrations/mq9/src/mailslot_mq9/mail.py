"""Mailboxes and mail: CREATE, SEND, FETCH, ACK, QUERY and DELETE mapped onto the SDK.

Mail sent here is ordinary Mailslot mail at ``mbox.<p>.<address>`` (a Mailslot client of
the address receives it), and FETCH/QUERY read a mailbox without taking anything, so mail
a Mailslot client sent is fetched too. The decisions where the two protocols differ are in
``docs/mq9.md``.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from typing import Any

import mailslot

from . import wire as w
from .store import Cursor, Store

#: Most messages one FETCH or QUERY returns, and the longest long-poll (mq9 gives neither).
MAX_BATCH = 1000
MAX_WAIT_MS = 60_000
DEFAULT_QUERY_LIMIT = 100
#: Mailslot keeps an offline mailbox at most this long (its MAX_KEEP): mq9 TTLs above it, and
#: 0 ("forever"), are kept that long by Mailslot's reclaim.
MAILSLOT_MAX_KEEP = 28 * 86400
#: The lease of the Mailslot mailbox CREATE opens and closes at once (so it exists, offline).
CREATE_LEASE = 5.0

_MQ9_HEADERS = {w.H_PRIORITY, w.H_KEY, w.H_DELAY, w.H_TTL, w.H_TAGS}


class Mail:
    def __init__(self, ms: mailslot.Mailslot, store: Store) -> None:
        self.ms = ms
        self.store = store

    # -- CREATE -----------------------------------------------------------------------------

    async def create(self, req: dict[str, Any]) -> bytes:
        ttl = w.integer(req, "ttl", 0)
        name = w.string(req, "name")
        address = w.check_address(name, what="mailbox name") if name else "mq9" + secrets.token_hex(10)
        if await self.store.native(address):
            raise w.exists_already(address)
        try:
            await self.store.create_mailbox(address, ttl)
        except mailslot.StateConflict:
            raise w.exists_already(address) from None
        try:
            # A Mailslot mailbox too (offline at once), whose retention is the mq9 TTL: the
            # broker's reclaim then ends it and its unread mail when the TTL runs out.
            keep = min(ttl, MAILSLOT_MAX_KEEP) if ttl else MAILSLOT_MAX_KEEP
            inbox = await self.ms.open(address, ttl=CREATE_LEASE, keep=keep, card={"metadata": {"mq9": True}})
            await inbox.close()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.store.drop_mailbox(address)
            raise
        return w.reply(mail_address=address)

    # -- SEND -------------------------------------------------------------------------------

    async def send(self, address: str, data: bytes, headers: dict[str, str]) -> bytes:
        w.check_address(address)
        prio = headers.get(w.H_PRIORITY) or "normal"
        if prio not in w.MQ9_PRIORITIES:
            raise w.Mq9Error(f"invalid priority {prio[:40]!r}: normal, urgent or critical")
        delay = w.header_int(headers, w.H_DELAY)
        ttl = w.header_int(headers, w.H_TTL)
        tags = [t.strip() for t in (headers.get(w.H_TAGS) or "").split(",") if t.strip()]
        key = headers.get(w.H_KEY) or None
        extra = {
            k: v for k, v in headers.items() if k.lower().startswith("mq9-") and k.lower() not in _MQ9_HEADERS
        }
        reply_to = headers.get("mq9-reply-to") or None
        if reply_to is not None:
            reply_to = w.check_address(reply_to, what="mq9-reply-to")
        box = await self.store.require(address)
        left = box.remaining() if box else None
        if left is not None:
            if left <= 0:
                raise w.does_not_exist(address)
            # The mailbox's mail ends with it: no message outlives the mq9 mailbox TTL.
            ttl = max(1, math.ceil(min(ttl or left, left - (delay or 0))))
        receipt = await self.ms.send(
            address,
            bytes(data),
            priority=prio,
            ttl=ttl or None,
            delay=delay or None,
            headers=extra or None,
            tags=tags or None,
            replace_key=key,
            reply_to=reply_to,
        )
        return w.reply(msg_id=-1 if receipt.scheduled else receipt.seq)

    # -- FETCH ------------------------------------------------------------------------------

    async def _start(self, view: mailslot.MailboxView, req: dict[str, Any], deliver: str) -> Cursor:
        if deliver == "earliest":
            return Cursor()
        if deliver == "latest":
            last = await view.last_seq()
            return Cursor(offsets=[last] * 4)
        if deliver == "from_id":
            first = w.integer(req, "from_id", minimum=0)
            return Cursor(offsets=[max(0, first - 1)] * 4)
        if deliver == "from_time":
            return Cursor(since=float(w.integer(req, "from_time", minimum=0)))
        raise w.Mq9Error(f"invalid deliver {deliver[:40]!r}: latest, earliest, from_time or from_id")

    async def _read(self, view: mailslot.MailboxView, cursor: Cursor, limit: int) -> list[mailslot.Message]:
        out: list[mailslot.Message] = []
        for prio in range(4):
            if len(out) >= limit:
                break
            out += await view.query(
                priority=prio, after=cursor.offsets[prio], since=cursor.since, limit=limit - len(out)
            )
        return out

    async def fetch(self, address: str, req: dict[str, Any]) -> bytes:
        w.check_address(address)
        deliver = w.string(req, "deliver", "latest") or "latest"
        force = w.boolean(req, "force_deliver")
        config = w.obj(req, "config")
        limit = min(w.integer(config, "num_msgs", 100, minimum=1), MAX_BATCH)
        wait_ms = min(w.integer(config, "max_wait_ms", 500), MAX_WAIT_MS)
        group = w.string(req, "group_name") or None
        await self.store.require(address)
        view = self.ms.inspect(address)
        watch = self.ms.watch_mail(address, removals=False) if wait_ms else None
        try:
            if watch is not None:
                await watch.start()  # before the first read: mail stored meanwhile wakes us
            cursor = await self._cursor(view, address, group, req, deliver, force)
            found = await self._read(view, cursor, limit)
            deadline = time.monotonic() + wait_ms / 1000
            while not found and watch is not None and (left := deadline - time.monotonic()) > 0:
                try:
                    await watch.next(timeout=left)
                except mailslot.Timeout:
                    break
                found = await self._read(view, cursor, limit)
        finally:
            if watch is not None:
                await watch.close()
        if group and found:
            handed = [[m.seq, int(m.priority)] for m in found]
            await self.store.handed_out(address, group, handed, cursor)
        return w.reply(messages=[w.message(m) for m in found])

    async def _cursor(
        self,
        view: mailslot.MailboxView,
        address: str,
        group: str | None,
        req: dict[str, Any],
        deliver: str,
        force: bool,
    ) -> Cursor:
        """A stateless FETCH's start; a group's saved cursor (made from ``deliver`` the first
        time, or again with ``force_deliver``)."""
        if group is None:
            return await self._start(view, req, deliver)
        cursor, rev = await self.store.group(address, group)
        if cursor is not None and not force:
            return cursor
        fresh = await self._start(view, req, deliver)
        if not await self.store.put_group(address, group, fresh, rev):
            cursor, _ = await self.store.group(address, group)  # another member set it first
            return cursor or fresh
        return fresh

    # -- ACK, QUERY, DELETE -----------------------------------------------------------------

    async def ack(self, address: str, req: dict[str, Any]) -> bytes:
        w.check_address(address)
        group = w.string(req, "group_name")
        if not group:
            raise w.Mq9Error("missing field group_name")
        msg_id = w.integer(req, "msg_id", minimum=1)
        await self.store.require(address)
        view = self.ms.inspect(address)

        async def priority_of(seq: int) -> int | None:
            for prio in range(4):
                found = await view.query(priority=prio, after=seq - 1, limit=1)
                if found and found[0].seq == seq:
                    return prio
            return None

        await self.store.ack(address, group, msg_id, priority_of)
        return w.reply()

    async def query(self, address: str, req: dict[str, Any]) -> bytes:
        w.check_address(address)
        key = w.string(req, "key") or None
        limit = min(w.integer(req, "limit", DEFAULT_QUERY_LIMIT, minimum=1), MAX_BATCH)
        since = req.get("since")
        if since is not None:
            since = w.integer(req, "since")
        tags = req.get("tags")
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        elif tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise w.Mq9Error("field tags must be a list of strings or a comma-separated string")
        await self.store.require(address)
        found = await self.ms.inspect(address).query(tags=tags or None, key=key, since=since, limit=limit)
        return w.reply(messages=[w.message(m) for m in found])

    async def delete(self, rest: str) -> bytes:
        address, _, raw_id = rest.rpartition(".")
        w.check_address(address)
        if not raw_id.isdigit() or not raw_id.isascii():
            raise w.Mq9Error(f"invalid msg_id {raw_id[:40]!r}: an integer is expected")
        await self.store.require(address)
        try:
            await self.ms.inspect(address).delete(int(raw_id))
        except mailslot.MessageNotFound:
            raise w.Mq9Error(w.NOT_FOUND) from None
        return w.reply(deleted=True)
