"""The agent-instance side of :class:`~mailslot_autogen.MailslotAgentRuntime`: factories,
lazily created instances, state. Nothing here touches mail; it is what any autogen-core runtime
does for the agents it hosts, kept apart so the runtime module stays about routing. With a
state store (:mod:`mailslot_autogen.state`) an instance starts from its stored state and every
save goes there too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from autogen_core import (
    Agent,
    AgentId,
    AgentInstantiationContext,
    AgentMetadata,
    AgentRuntime,
    AgentType,
    try_get_known_serializers_for_type,
)
from autogen_core._runtime_impl_helpers import get_impl
from autogen_core._serialization import SerializationRegistry

from .state import AgentStates, has_state

T = TypeVar("T", bound=Agent)


class AgentHostMixin:
    """Instances of the agent types this runtime hosts, created on first message."""

    _factories: dict[str, Callable[[], Awaitable[Agent]]]
    _instances: dict[AgentId, Agent]
    _creating: dict[AgentId, asyncio.Future[Agent]]
    _ser: SerializationRegistry
    _states: AgentStates | None

    def _init_host(self, states: AgentStates | None = None) -> None:
        self._factories = {}
        self._instances = {}
        self._creating = {}
        self._ser = SerializationRegistry()
        self._states = states

    def _runtime(self) -> AgentRuntime:
        assert isinstance(self, AgentRuntime)
        return self

    async def _get_agent(self, agent_id: AgentId) -> Agent:
        if agent_id in self._instances:
            return self._instances[agent_id]
        if agent_id in self._creating:
            return await self._creating[agent_id]
        factory = self._factories.get(agent_id.type)
        if factory is None:
            raise LookupError(f"agent type {agent_id.type!r} is not hosted by this runtime")
        fut: asyncio.Future[Agent] = asyncio.get_running_loop().create_future()
        self._creating[agent_id] = fut
        try:
            with AgentInstantiationContext.populate_context((self._runtime(), agent_id)):
                agent = await factory()
            if self._states is not None:
                await self._states.restore(agent)
            self._instances[agent_id] = agent
            fut.set_result(agent)
            return agent
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._creating[agent_id]

    def _add_handler_types(self, cls: type | None) -> None:
        """Serializers for what an agent's handlers accept and return, before its type is
        hosted: ``register()`` adds the accepted ones only after ``register_factory``
        returns (and awaits subscriptions in between), by which time the type's mailbox may
        already hand out waiting mail; an RPC answer must be serialized here too."""
        handles = getattr(cls, "_handles_types", None)
        if handles is not None:
            with contextlib.suppress(Exception):
                for _message_type, serializers in handles():
                    self._ser.add_serializer(serializers)
        discover = getattr(cls, "_discover_handlers", None)
        if discover is None:
            return
        for handler in discover():
            for t in getattr(handler, "produces_types", []):
                if isinstance(t, type) and t is not type(None):
                    with contextlib.suppress(Exception):
                        self._ser.add_serializer(try_get_known_serializers_for_type(t))

    async def try_get_underlying_agent_instance(self, id: AgentId, type: type[T] = Agent) -> T:  # type: ignore[assignment]
        agent = await self._get_agent(id)
        if not isinstance(agent, type):
            raise TypeError(f"agent {id} is a {agent.__class__.__name__}, not a {type.__name__}")
        return agent

    async def get(
        self, id_or_type: AgentId | AgentType | str, /, key: str = "default", *, lazy: bool = True
    ) -> AgentId:
        return await get_impl(id_or_type=id_or_type, key=key, lazy=lazy, instance_getter=self._get_agent)

    async def _store_state(self, agent: Agent, *, force: bool = False) -> Mapping[str, Any]:
        """Write the agent's state to the store; a conflict or a state too large to store drops
        the instance, so the next message starts from the stored state, not from this one."""
        if self._states is None:
            return await agent.save_state()
        try:
            return await self._states.save(agent, force=force)
        except Exception:
            if agent.id.type in self._factories:
                self._evict(agent.id)
            else:  # a registered instance has no factory to make it again: reload it
                with contextlib.suppress(Exception):
                    await self._states.restore(agent)
            raise

    async def _autosave(self, agent: Agent) -> None:
        """After a handled message (and at stop): store a stateful agent's state."""
        if self._states is not None and has_state(agent):
            await self._store_state(agent)

    def _evict(self, agent_id: AgentId) -> None:
        self._instances.pop(agent_id, None)
        if self._states is not None:
            self._states.forget(agent_id)

    async def save_state(self) -> Mapping[str, Any]:
        return {
            str(aid): dict(await self._store_state(agent)) for aid, agent in list(self._instances.items())
        }

    async def load_state(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            await self.agent_load_state(AgentId.from_str(key), value)

    async def agent_metadata(self, agent: AgentId) -> AgentMetadata:
        return (await self._get_agent(agent)).metadata

    async def agent_save_state(self, agent: AgentId) -> Mapping[str, Any]:
        return await self._store_state(await self._get_agent(agent))

    async def agent_load_state(self, agent: AgentId, state: Mapping[str, Any]) -> None:
        instance = await self._get_agent(agent)
        await instance.load_state(state)
        await self._store_state(instance, force=True)


__all__ = ["AgentHostMixin"]
