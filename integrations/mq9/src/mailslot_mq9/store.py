"""What the gateway remembers, kept on JetStream in the state namespace ``mq9`` so that any
replica can answer any request: mq9 mailboxes (their TTL), consumer groups (offsets and what
was handed out), and registered agents. A replica holds nothing but a short cache of which
addresses Mailslot clients have opened.

Group records are updated with compare-and-set (``expect_revision``), so two replicas serving
the same group at once cannot lose an ack.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import mailslot

from .wire import Mq9Error, does_not_exist

NAMESPACE = "mq9"
#: Mailslot's four priorities, most urgent first (their digits index the offsets).
PRIORITIES = (
    mailslot.Priority.CRITICAL,
    mailslot.Priority.URGENT,
    mailslot.Priority.NORMAL,
    mailslot.Priority.LOW,
)
#: How long the list of Mailslot-opened addresses is trusted before it is read again.
NATIVE_CACHE = 5.0
#: Most mailbox records a replica keeps in its cache.
_CACHE_SIZE = 10_000
#: How often a group record is written again after losing a compare-and-set.
_CAS_TRIES = 20


@dataclass
class Mailbox:
    address: str
    ttl: int  # seconds; 0 = never expires
    created: float

    def remaining(self) -> float | None:
        """Seconds the mailbox still lives; None if forever."""
        return None if not self.ttl else self.created + self.ttl - time.time()


@dataclass
class Cursor:
    """Where a reader stands: the last sequence read per priority, and an optional time floor."""

    offsets: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    since: float | None = None
    handed: list[list[int]] = field(default_factory=list)  # [seq, priority digit], hand-out order
    #: The state record's revision this cursor was read at (0: not stored); not stored itself.
    revision: int = 0

    def encode(self) -> bytes:
        return json.dumps({"offsets": self.offsets, "since": self.since, "handed": self.handed}).encode()

    @classmethod
    def decode(cls, data: bytes) -> Cursor:
        d = json.loads(data)
        return cls(
            offsets=list(d["offsets"]), since=d.get("since"), handed=[list(x) for x in d.get("handed", [])]
        )


class Store:
    def __init__(self, ms: mailslot.Mailslot) -> None:
        self.ms = ms
        self.state = ms.state(NAMESPACE)
        self._native: set[str] = set()
        self._native_at = 0.0
        self._boxes: dict[str, tuple[Mailbox, float]] = {}

    # -- mailboxes --------------------------------------------------------------------------

    async def mailbox(self, address: str) -> Mailbox | None:
        # A record never changes once written and ends only with its TTL: one found is
        # trusted for a few seconds (never past its end) instead of read on every SEND.
        hit = self._boxes.get(address)
        if hit is not None and time.monotonic() < hit[1]:
            return hit[0]
        entry = await self.state.get(("mailbox", address))
        if entry is None:
            self._boxes.pop(address, None)
            return None
        d = json.loads(entry.value)
        box = Mailbox(address, int(d["ttl"]), float(d["created"]))
        left = box.remaining()
        until = time.monotonic() + min(NATIVE_CACHE, left if left is not None else NATIVE_CACHE)
        if len(self._boxes) >= _CACHE_SIZE:
            self._boxes.clear()
        self._boxes[address] = (box, until)
        return box

    async def create_mailbox(self, address: str, ttl: int) -> Mailbox:
        box = Mailbox(address, ttl, time.time())
        value = json.dumps({"ttl": ttl, "created": box.created}).encode()
        await self.state.put(("mailbox", address), value, expect_revision=0, ttl=ttl or None)
        return box

    async def drop_mailbox(self, address: str) -> None:
        self._boxes.pop(address, None)
        await self.state.delete(("mailbox", address))

    async def native(self, address: str) -> bool:
        """Whether a Mailslot client opened ``address`` (its mailbox is kept, online or not)."""
        if address in self._native and time.monotonic() - self._native_at < NATIVE_CACHE:
            return True
        # A miss is read again every time: a mailbox opened a moment ago counts.
        cards = await self.ms.agents(include_offline=True)
        # A mailbox CREATE made (its card marked mq9) exists while its mq9 record does.
        self._native = {c.address for c in cards if c.address and not c.metadata.get("mq9")}
        self._native_at = time.monotonic()
        return address in self._native

    async def require(self, address: str) -> Mailbox | None:
        """The mq9 record of ``address``, None for a mailbox only Mailslot clients opened;
        mq9's "does not exist" when neither knows it."""
        box = await self.mailbox(address)
        if box is not None or await self.native(address):
            return box
        raise does_not_exist(address)

    # -- groups -----------------------------------------------------------------------------

    async def group(self, address: str, group: str) -> tuple[Cursor | None, int]:
        entry = await self.state.get(("group", address, group))
        if entry is None:
            return None, 0
        cursor = Cursor.decode(entry.value)
        cursor.revision = entry.revision
        return cursor, entry.revision

    async def put_group(self, address: str, group: str, cursor: Cursor, revision: int) -> bool:
        """Write the group's cursor if nobody did since ``revision``; False if somebody did."""
        try:
            cursor.revision = await self.state.put(
                ("group", address, group), cursor.encode(), expect_revision=revision
            )
        except mailslot.StateConflict:
            return False
        return True

    async def handed_out(self, address: str, group: str, handed: list[list[int]], base: Cursor) -> None:
        """Remember what the last FETCH gave the group (ACK is cumulative over it)."""
        base.handed = handed
        if base.revision and await self.put_group(address, group, base, base.revision):
            return  # nobody wrote since this FETCH read it: one write
        for _ in range(_CAS_TRIES):
            cursor, rev = await self.group(address, group)
            cursor = cursor or base
            cursor.handed = handed
            if await self.put_group(address, group, cursor, rev):
                return
        raise Mq9Error(f"group {group} is busy; try again")

    async def ack(self, address: str, group: str, msg_id: int, priority_of: Any) -> None:
        """Advance the group's offsets over every message handed out up to ``msg_id``."""
        for _ in range(_CAS_TRIES):
            cursor, rev = await self.group(address, group)
            if cursor is None:
                raise Mq9Error(f"consumer group {group} not found on mailbox {address}")
            seqs = [s for s, _ in cursor.handed]
            if msg_id in seqs:
                upto = seqs.index(msg_id) + 1
                for seq, prio in cursor.handed[:upto]:
                    cursor.offsets[prio] = max(cursor.offsets[prio], seq)
                cursor.handed = cursor.handed[upto:]
            else:
                prio = await priority_of(msg_id)
                if prio is None:
                    return  # gone (deleted or expired): nothing left to ack
                cursor.offsets[prio] = max(cursor.offsets[prio], msg_id)
            if await self.put_group(address, group, cursor, rev):
                return
        raise Mq9Error(f"group {group} is busy; try again")

    # -- agents -----------------------------------------------------------------------------

    async def register(self, address: str, record: dict[str, Any], *, ttl: float) -> None:
        await self.state.put(("agent", address), json.dumps(record).encode(), ttl=ttl)

    async def refresh(self, address: str, *, ttl: float) -> bool:
        entry = await self.state.get(("agent", address))
        if entry is None:
            return False
        await self.state.put(("agent", address), entry.value, ttl=ttl)
        return True

    async def unregister(self, address: str) -> None:
        await self.state.delete(("agent", address))

    async def agents(self) -> list[dict[str, Any]]:
        out = []
        for entry in await self.state.items(("agent",)):
            try:
                value = json.loads(entry.value)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
        return out
