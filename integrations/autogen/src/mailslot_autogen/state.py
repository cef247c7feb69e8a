"""Agent state of :class:`~mailslot_autogen.MailslotAgentRuntime` in the SDK's state store.

An autogen-core runtime keeps its agents' state in the process: a host restart forgets it. Here
each agent's ``save_state()`` is written to ``ms.state(store)`` under the key
``(namespace, agent type, agent key)`` after every message it handled, and read back into the
agent when a runtime (this process or another, after a restart) creates the instance again, so
the agent continues where it stopped. The state lives on the broker, replicated like the mail;
nothing is written on the host. An agent that does not implement ``save_state`` (``BaseAgent``'s
own only warns) is left alone.

Writes are conditional on the revision this runtime last read or wrote: when another replica
hosting the same agent id wrote first, the save raises ``StateConflict`` instead of overwriting
it, and the runtime drops its stale instance (the next message creates it from the stored
state). An unchanged state (a stateless ``RoutedAgent`` returns ``{}``) is not written again.

Size: one agent's state, as JSON, must fit in ``store.max_value_size`` (the server's max payload
less the key and headers; about 1 MiB by default). A larger one raises ``StateTooLarge`` and
nothing is written: the stored state stays the last one that fitted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import mailslot
from autogen_core import Agent, AgentId, BaseAgent

#: Namespace of the SDK state store the runtime uses by default.
DEFAULT_STATE_STORE = "autogen"

#: Format of one stored agent state: ``{"v": 1, "agent": "type/key", "state": {...}}``.
_FORMAT = 1


def has_state(agent: Agent) -> bool:
    """Whether the agent keeps state: ``BaseAgent``'s own ``save_state`` only warns "not
    implemented" and returns ``{}``, so such an agent is neither read nor written."""
    return getattr(type(agent), "save_state", None) is not BaseAgent.save_state


def encode_state(agent_id: AgentId, state: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys) so an unchanged state encodes to the same bytes."""
    doc = {"v": _FORMAT, "agent": str(agent_id), "state": dict(state)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode_state(data: bytes) -> dict[str, Any]:
    doc = json.loads(data)
    if not isinstance(doc, dict) or not isinstance(doc.get("state"), dict):
        raise ValueError("stored agent state is not an object with a 'state' mapping")
    return dict(doc["state"])


class AgentStates:
    """The stored state of the agents one runtime hosts (see the module docstring)."""

    def __init__(
        self, client: mailslot.Mailslot, *, namespace: str, store: str = DEFAULT_STATE_STORE
    ) -> None:
        self.store = client.state(store)
        self.namespace = namespace
        # Per agent: the revision last read or written (0: nothing stored) and its bytes.
        self._seen: dict[AgentId, tuple[int, bytes]] = {}
        self._locks: dict[AgentId, asyncio.Lock] = {}

    def key(self, agent_id: AgentId) -> tuple[str, str, str]:
        return (self.namespace, agent_id.type, agent_id.key)

    def _lock(self, agent_id: AgentId) -> asyncio.Lock:
        return self._locks.setdefault(agent_id, asyncio.Lock())

    def forget(self, agent_id: AgentId) -> None:
        """The instance is gone: the next one reads the stored state again."""
        self._seen.pop(agent_id, None)

    async def restore(self, agent: Agent) -> None:
        """Load the stored state, if any, into a freshly created ``agent``."""
        if not has_state(agent):
            return
        async with self._lock(agent.id):
            entry = await self.store.get(self.key(agent.id))
            if entry is None:
                self._seen[agent.id] = (0, encode_state(agent.id, {}))
                return
            await agent.load_state(decode_state(entry.value))
            self._seen[agent.id] = (entry.revision, entry.value)

    async def save(self, agent: Agent, *, force: bool = False) -> Mapping[str, Any]:
        """Write ``agent.save_state()`` if it changed; returns the state.

        Conditional on the revision last seen (``StateConflict`` if another writer came
        first), unless ``force``: ``load_state`` with a state the caller gives overwrites."""
        async with self._lock(agent.id):
            state = await agent.save_state()
            data = encode_state(agent.id, state)
            seen = self._seen.get(agent.id)
            if seen is not None and seen[1] == data and not force:
                return state
            expect = None if force or seen is None else seen[0]
            try:
                revision = await self.store.put(self.key(agent.id), data, expect_revision=expect)
            except mailslot.StateConflict:
                self.forget(agent.id)
                raise
            self._seen[agent.id] = (revision, data)
            return state

    async def stored(self, agent_id: AgentId) -> dict[str, Any] | None:
        """The state stored for ``agent_id`` (None if none), without creating the agent."""
        entry = await self.store.get(self.key(agent_id))
        return None if entry is None else decode_state(entry.value)

    async def delete(self, agent_id: AgentId) -> None:
        """Remove the stored state (the agent starts afresh when next created)."""
        async with self._lock(agent_id):
            await self.store.delete(self.key(agent_id))
            self.forget(agent_id)


__all__ = ["DEFAULT_STATE_STORE", "AgentStates", "decode_state", "encode_state", "has_state"]
