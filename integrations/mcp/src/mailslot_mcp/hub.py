"""One Mailslot connection per server process, one open mailbox per agent it serves.

The MCP session never names its agent: the server derives it from the connection (the spawn
environment over stdio, the bearer token over HTTP) and asks the hub for that agent's state.
Everything durable stays in the broker; what the hub keeps is what a session needs between
calls: messages it received and has not settled yet (``held``, so ``ack`` can take ids), and
the MCP sessions subscribed to the agent's resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import mailslot

log = logging.getLogger("mailslot_mcp")

#: What a thread resource's URI has between the agent and the thread id (resources.py).
THREAD_PATH = "/thread/"

#: How long giving back held mail may take (naks are confirmed round trips).
GIVE_BACK_TIMEOUT = 5.0

Notify = Callable[[str], Awaitable[None]]


@dataclass
class Held:
    """A message this agent received through ``wait_for_mail`` and has not settled."""

    message: mailslot.Message
    shown: bool = False  # returned to the model by a wait (else it did not match its filter)


@dataclass
class AgentState:
    """What the server keeps for one agent between tool calls."""

    agent: str
    mailbox: mailslot.Mailbox
    held: dict[str, Held] = field(default_factory=dict)
    #: resource URI -> callbacks that send notifications/resources/updated to one MCP session
    subscribers: dict[str, dict[int, Notify]] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)
    recv_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    busy: int = 0  # calls blocked in a wait right now: never idle meanwhile
    #: The mail watch sees acks and dead letters (else only arrivals: see _feed).
    sees_removals: bool = True
    _watch: asyncio.Task[None] | None = None
    _watch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def touch(self) -> None:
        self.last_used = time.monotonic()

    @contextlib.contextmanager
    def blocking(self) -> Iterator[None]:
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            self.touch()

    def take(self, ids: list[str]) -> list[mailslot.Message]:
        """The held messages with these ids, all or none (an unknown id is the caller's error)."""
        missing = [i for i in ids if i not in self.held]
        if missing:
            raise mailslot.InvalidInput(
                f"not holding {', '.join(missing)}: only mail this agent received with "
                "wait_for_mail can be settled (see inbox)"
            )
        return [self.held[i].message for i in ids]

    def release(self, ids: list[str]) -> None:
        for i in ids:
            self.held.pop(i, None)

    async def give_back(self, ids: list[str], *, delay: float | None = None) -> None:
        """Nak the held messages with these ids (after ``delay`` s, default none): nobody
        will settle them through this server, so they are redelivered now rather than after
        the ack wait. Shielded and bounded, because it runs while the caller is being
        cancelled."""
        back = [self.held.pop(i).message for i in ids if i in self.held]
        if not back:
            return
        with anyio.move_on_after(GIVE_BACK_TIMEOUT, shield=True):
            for m in back:
                try:
                    await m.nak(delay=delay)
                except mailslot.MailslotError as exc:  # e.g. already redelivered elsewhere
                    log.debug("giving back %s: %r", m.id, exc)

    async def notify(self, uris: Iterable[str] | None = None) -> None:
        """Send resources/updated for ``uris`` (default: every subscribed one)."""
        for uri in list(self.subscribers if uris is None else uris):
            for key, send in list(self.subscribers.get(uri, {}).items()):
                try:
                    await send(uri)
                except Exception as exc:  # the session is gone: forget it
                    log.debug("dropping subscriber of %s: %r", uri, exc)
                    self.subscribers.get(uri, {}).pop(key, None)

    async def subscribe(self, uri: str, key: int, send: Notify) -> None:
        """Listening for the mailbox's changes when it returns, so mail sent right after
        the subscription is not missed."""
        self.subscribers.setdefault(uri, {})[key] = send
        async with self._watch_lock:
            if self._watch is None or self._watch.done():
                feed = await self._feed()
                self._watch = asyncio.create_task(self._watch_mailbox(feed), name=f"mcp-watch:{self.agent}")

    def unsubscribe(self, uri: str, key: int) -> None:
        self.subscribers.get(uri, {}).pop(key, None)
        if not self.subscribers.get(uri):
            self.subscribers.pop(uri, None)
        if not self.subscribers and self._watch is not None:
            self._watch.cancel()  # it closes its feed as it ends; a new subscription starts anew
            self._watch = None

    async def _feed(self) -> mailslot.MailWatch:
        """The SDK's push feed of this mailbox's changes; arrivals only for credentials that
        may not subscribe to acks and dead letters (then the ack tool notifies itself)."""
        client = self.mailbox.client
        try:
            return await client.watch_mail(self.agent)
        except mailslot.PermissionDenied as exc:
            log.info("watching arrivals only for %s: %s", self.agent, exc)
            self.sees_removals = False
            return await client.watch_mail(self.agent, removals=False)

    def _affected(self, changes: list[mailslot.MailChange]) -> set[str]:
        """The subscribed URIs these changes touch: new mail changes the inbox and its own
        thread; a removal (whose thread is not known) may change any of them."""
        out: set[str] = set()
        for uri in self.subscribers:
            _, is_thread, thread = uri.partition(THREAD_PATH)
            for change in changes:
                if not is_thread or change.kind != "arrived" or change.thread_id == thread:
                    out.add(uri)
                    break
        return out

    async def _watch_mailbox(self, feed: mailslot.MailWatch) -> None:
        """Notify subscribers when the mailbox's contents change, as the broker pushes the
        change (bells, acks, dead letters): nothing is polled. A burst of changes read
        together makes one notification per resource."""
        async with feed:
            while self.subscribers:
                try:
                    changes = [await feed.next()]
                except StopAsyncIteration:  # the client closed
                    return
                while feed.pending():
                    changes.append(await feed.next())
                await self.notify(self._affected(changes))

    async def close(self) -> None:
        """Close the mailbox, then give back the mail this agent holds unsettled (the server
        stops, or the agent left over HTTP): closed first, so the redelivery goes to another
        receiver and not into this mailbox's prefetch, which would cost one more delivery."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(BaseException):
                await self._watch
        try:
            await self.mailbox.close()
            await self.give_back(list(self.held))
        finally:
            await self.mailbox.client.close()


class Hub:
    """The agents this server serves, each through a connection of its own named after it
    (what the SDK stamps as the sender of its broadcasts)."""

    def __init__(
        self,
        *,
        url: str | None = None,
        credentials: str | None = None,
        ack_wait: float = 600.0,
        lease_ttl: float | None = None,
        card: dict[str, Any] | None = None,
    ) -> None:
        self._url = url
        self._credentials = credentials
        self._ack_wait = ack_wait
        self._lease_ttl = lease_ttl
        self._card = card or {}
        self._agents: dict[str, AgentState] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    def _connect(self, name: str) -> Any:
        return mailslot.connect(self._url, credentials=self._credentials, name=name)

    async def start(self) -> None:
        """Fail at startup, not at the first tool call, when the broker is unreachable."""
        async with self._connect("mailslot-mcp"):
            pass

    async def stop(self) -> None:
        for state in list(self._agents.values()):
            with contextlib.suppress(Exception):
                await state.close()
        self._agents.clear()

    async def agent(self, agent: str) -> AgentState:
        """The agent's state, opening its mailbox (and so taking its lease) on first use."""
        state = self._agents.get(agent)
        if state is None:
            async with self._opening.setdefault(agent, asyncio.Lock()):
                state = self._agents.get(agent)
                if state is None:
                    card = {"name": agent, "tags": ["mcp"], **self._card}
                    opts: dict[str, Any] = {"card": card, "ack_wait": self._ack_wait}
                    if self._lease_ttl is not None:
                        opts["ttl"] = self._lease_ttl
                    client = await self._connect(agent)
                    try:
                        mb = await client.open(agent, **opts)
                    except BaseException:
                        await client.close()
                        raise
                    state = self._agents[agent] = AgentState(agent, mb)
        state.touch()
        return state

    async def release_idle(self, idle: float) -> None:
        """Close the mailboxes of agents that made no call for ``idle`` seconds and have no
        resource subscription: over HTTP there is no connection whose end says the agent
        left, so its lease goes once it has been quiet that long (its mail stays)."""
        while True:
            await asyncio.sleep(min(max(idle / 4, 0.05), 30.0))
            now = time.monotonic()
            for agent, state in list(self._agents.items()):
                if now - state.last_used >= idle and not state.busy and not state.subscribers:
                    self._agents.pop(agent, None)
                    try:
                        await state.close()
                    except mailslot.MailslotError as exc:
                        log.warning("closing the idle mailbox of %s: %r", agent, exc)
