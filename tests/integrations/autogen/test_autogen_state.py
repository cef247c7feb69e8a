"""MailslotAgentRuntime keeps agent state in the SDK's state store: a host restart (a clean stop,
or SIGKILL) does not forget it, replicas do not overwrite each other's newer state, and a state too
large to store fails the message."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mailslot
import pytest
from _ag_agents import Add, Count, Counter, Done
from autogen_core import AgentId, try_get_known_serializers_for_type
from mailslot_autogen import MailslotAgentRuntime, RemoteHandlerError
from mailslot_autogen.state import encode_state
from mailslot_broker import NatsServer
from testsupport import client_env

HERE = Path(__file__).parent
C1 = AgentId("counter", "c1")


async def _connect(server: NatsServer, name: str) -> mailslot.Mailslot:
    c = server.credentials
    return await mailslot.connect(server.url, user=c.user, password=c.password, name=name)


def _caller(ms: mailslot.Mailslot, **opts: Any) -> MailslotAgentRuntime:
    rt = MailslotAgentRuntime(ms, namespace="t", rpc_timeout=30, **opts)
    rt.add_message_serializer(try_get_known_serializers_for_type(Count))
    rt.add_message_serializer(try_get_known_serializers_for_type(Done))
    return rt


async def _add(rt: MailslotAgentRuntime, n: int = 1, pad: int = 0, to: AgentId = C1) -> int:
    count = await rt.send_message(Add(n, pad), to)
    assert isinstance(count, Count) and count.by == str(to)
    return count.value


async def _stored(ms: mailslot.Mailslot, agent: AgentId = C1) -> dict[str, Any] | None:
    entry = await ms.state("autogen").get(("t", agent.type, agent.key))
    return None if entry is None else json.loads(entry.value)["state"]


@contextlib.asynccontextmanager
async def _counter_host(server: NatsServer) -> AsyncIterator[tuple[MailslotAgentRuntime, mailslot.Mailslot]]:
    """A runtime hosting the counter type, and a caller runtime with its client."""
    a, b = await _connect(server, "host"), await _connect(server, "client")
    host = MailslotAgentRuntime(a, namespace="t")
    caller = _caller(b)
    try:
        await Counter.register(host, "counter", Counter)
        yield caller, b
    finally:
        await caller.stop()
        await host.stop()
        await a.close()
        await b.close()


async def test_state_survives_a_host_stopped_and_a_new_one_started(server: NatsServer) -> None:
    a, b = await _connect(server, "host-1"), await _connect(server, "client")
    caller = _caller(b)
    try:
        host = MailslotAgentRuntime(a, namespace="t")
        await Counter.register(host, "counter", Counter)
        assert [await _add(caller) for _ in range(3)] == [1, 2, 3]
        assert await _add(caller, 10, to=AgentId("counter", "other")) == 10
        assert await _stored(b) == {"total": 3, "pad": ""}
        # The runtime's own save_state / agent_save_state report (and store) the same.
        assert (await host.agent_save_state(C1))["total"] == 3
        assert {k: v["total"] for k, v in (await host.save_state()).items()} == {
            "counter/c1": 3,
            "counter/other": 10,
        }
        await host.stop()
        await a.close()

        a = await _connect(server, "host-2")
        host = MailslotAgentRuntime(a, namespace="t")
        await Counter.register(host, "counter", Counter)
        assert await _add(caller) == 4  # continues from the stored state
        assert await _add(caller, to=AgentId("counter", "other")) == 11
        # load_state sets the agent's state and stores it too.
        await host.agent_load_state(C1, {"total": 100, "pad": ""})
        assert await _stored(b) == {"total": 100, "pad": ""}
        assert await _add(caller) == 101
        await host.stop()
    finally:
        await caller.stop()
        await a.close()
        await b.close()


async def test_state_survives_a_killed_host_process(
    server: NatsServer, children: Any, tmp_path: Path
) -> None:
    b = await _connect(server, "client")
    caller = _caller(b)
    env = client_env(server)
    argv = [sys.executable, str(HERE / "_ag_agents.py"), "t", str(tmp_path / "stop"), "counter"]

    async def started() -> Any:
        proc = children.spawn(argv, env)
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        assert line.strip() == "host ready", children.stderr(proc)
        return proc

    try:
        first = await started()
        assert [await _add(caller) for _ in range(3)] == [1, 2, 3]
        children.kill(first)  # no stop(), no cleanup: only what was stored before each ack
        await started()
        assert [await _add(caller) for _ in range(2)] == [4, 5]
        assert await _stored(b) == {"total": 5, "pad": ""}
    finally:
        await caller.stop()
        await b.close()


async def test_a_replica_does_not_overwrite_newer_state(server: NatsServer) -> None:
    async with _counter_host(server) as (caller, b):
        assert await _add(caller) == 1
        # Another replica hosting counter/c1 moved it on meanwhile (here: written directly).
        store = b.state("autogen")
        await store.put(("t", "counter", "c1"), encode_state(C1, {"total": 10, "pad": ""}))
        # This host's instance still says 1; its save conflicts, the instance is dropped and
        # the message runs again on the stored state: 10 + 1, not 1 + 1 over the 10.
        assert await _add(caller) == 11
        assert await _stored(b) == {"total": 11, "pad": ""}


async def test_a_state_too_large_to_store_fails_the_message(server: NatsServer) -> None:
    async with _counter_host(server) as (caller, b):
        assert await _add(caller, pad=1000) == 1
        limit = b.state("autogen").max_value_size
        with pytest.raises(RemoteHandlerError, match="StateTooLarge"):
            await _add(caller, pad=limit + 1)
        # Nothing was written; the instance that took the message was dropped, so the agent
        # goes on from its last stored state (total 1), not from the one that did not fit.
        assert await _stored(b) == {"total": 1, "pad": "x" * 1000}
        assert await _add(caller) == 2


async def test_in_memory_state_when_the_store_is_off(server: NatsServer) -> None:
    a, b = await _connect(server, "host-1"), await _connect(server, "client")
    caller = _caller(b)
    try:
        host = MailslotAgentRuntime(a, namespace="t", state_store=None)
        await Counter.register(host, "counter", Counter)
        assert [await _add(caller) for _ in range(2)] == [1, 2]
        await host.stop()
        host = MailslotAgentRuntime(a, namespace="t", state_store=None)
        await Counter.register(host, "counter", Counter)
        assert await _add(caller) == 1  # forgotten with the runtime, as autogen-core's own do
        await host.stop()
        assert await _stored(b) is None
    finally:
        await caller.stop()
        await a.close()
        await b.close()
