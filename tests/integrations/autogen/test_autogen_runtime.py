"""MailslotAgentRuntime: unchanged RoutedAgents exchanging durable tasks across runtimes and
processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mailslot
import pytest
from _ag_agents import Boss, Done, News, Task, Worker
from autogen_core import AgentId, TopicId, TypeSubscription, try_get_known_serializers_for_type
from mailslot_autogen import SERVICE_KEEP, MailslotAgentRuntime, RemoteHandlerError, type_address
from mailslot_broker import NatsServer
from testsupport import client_env, wait_for

HERE = Path(__file__).parent


async def _connect(server: NatsServer, name: str) -> mailslot.Mailslot:
    c = server.credentials
    return await mailslot.connect(server.url, user=c.user, password=c.password, name=name)


async def _holds_one(view: mailslot.MailboxView) -> bool:
    return (await view.stats()).total == 1


def _client_runtime(ms: mailslot.Mailslot) -> MailslotAgentRuntime:
    rt = MailslotAgentRuntime(ms, namespace="t", rpc_timeout=30)
    rt.add_message_serializer(try_get_known_serializers_for_type(Done))  # the answer type
    return rt


async def test_rpc_between_two_runtimes(server: NatsServer) -> None:
    a, b = await _connect(server, "host"), await _connect(server, "client")
    host = MailslotAgentRuntime(a, namespace="t")
    client = _client_runtime(b)
    try:
        await Worker.register(host, "worker", Worker)
        done = await client.send_message(Task("sum"), AgentId("worker", "w1"), sender=AgentId("cli", "c1"))
        assert isinstance(done, Done)
        assert done == Done(body="did sum for cli/c1", by="worker/w1")
        with pytest.raises(RemoteHandlerError, match="cannot do that"):
            await client.send_message(Task("explode"), AgentId("worker", "w1"))
        # agent-to-agent: a Boss hosted by the client runtime calls the worker through the host
        await Boss.register(client, "boss", Boss)
        boss_done = await client.send_message(Task("plan"), AgentId("boss", "b1"))
        assert boss_done.body == "boss: did plan (delegated) for boss/b1"
        w1 = await host.try_get_underlying_agent_instance(AgentId("worker", "w1"), Worker)
        assert w1.id == AgentId("worker", "w1")
    finally:
        await client.stop()
        await host.stop()
        await a.close()
        await b.close()


async def test_rpc_waits_for_a_host_that_starts_later(server: NatsServer) -> None:
    b = await _connect(server, "client")
    client = _client_runtime(b)
    pending = asyncio.create_task(client.send_message(Task("late job"), AgentId("worker", "w2")))
    view = b.inspect(type_address("t", "worker"))
    await wait_for(lambda: _holds_one(view), timeout=10)
    assert (await view.stats()).total == 1 and not pending.done()  # stored, nobody hosts it yet
    a = await _connect(server, "host")
    host = MailslotAgentRuntime(a, namespace="t")
    try:
        await Worker.register(host, "worker", Worker)
        done = await asyncio.wait_for(pending, 30)
        assert done.body == "did late job for None" and done.by == "worker/w2"
    finally:
        await client.stop()
        await host.stop()
        await a.close()
        await b.close()


async def test_publish_live_broadcast_and_durable_fanout(server: NatsServer) -> None:
    a, b = await _connect(server, "host"), await _connect(server, "client")
    host = MailslotAgentRuntime(a, namespace="t")
    client = _client_runtime(b)
    try:
        await Worker.register(host, "worker", Worker)
        await host.add_subscription(TypeSubscription("news", "worker"))
        # the client does not know the subscription: live broadcast, the host routes it
        await client.publish_message(News("live"), TopicId("news", "w1"))
        w1 = await host.try_get_underlying_agent_instance(AgentId("worker", "w1"), Worker)
        await wait_for(lambda: w1.news == ["live@w1"])
        # the client declares it too: durable mail per recipient, and no duplicate broadcast
        await client.add_subscription(TypeSubscription("news", "worker"))
        await client.publish_message(News("durable"), TopicId("news", "w1"))
        await wait_for(lambda: len(w1.news) == 2)
        await asyncio.sleep(0.5)
        await host.idle()
        assert w1.news == ["live@w1", "durable@w1"]
    finally:
        await host.stop()
        # with the host gone, a published event for a declared subscription waits as mail
        await client.publish_message(News("while away"), TopicId("news", "w3"))
        await client.stop()
        assert (await b.inspect(type_address("t", "worker")).stats()).total == 1
        await a.close()
        await b.close()


async def test_task_to_a_host_in_another_process_started_later(server: NatsServer, tmp_path: Path) -> None:
    b = await _connect(server, "client")
    client = _client_runtime(b)
    stop = tmp_path / "stop"
    proc: subprocess.Popen[str] | None = None
    try:
        pending = asyncio.create_task(client.send_message(Task("cross"), AgentId("worker", "far")))
        view = b.inspect(type_address("t", "worker"))
        await wait_for(lambda: _holds_one(view), timeout=10)
        env = client_env(server)
        env["PYTHONPATH"] = str(HERE) + ":" + env["PYTHONPATH"]
        proc = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, str(HERE / "_ag_agents.py"), "t", str(stop)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        done = await asyncio.wait_for(pending, 60)
        assert done == Done(body="did cross for None", by="worker/far")
        # a second task, now that it runs
        again = await client.send_message(Task("again"), AgentId("worker", "far"), sender=AgentId("x", "y"))
        assert again.body == "did again for x/y"
        stop.touch()
        out, err = await asyncio.to_thread(proc.communicate, timeout=60)
        assert proc.returncode == 0, err
        assert "host done" in out
    finally:
        stop.touch()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        await client.stop()
        await b.close()


def test_address_escaping_is_injective_and_valid() -> None:
    from mailslot_autogen.addressing import escape_token, queue_group, runtime_address, topic_name
    from mailslot_broker.protocol import validate_address

    names = ["worker", "my.agent", "my_agent", "my_2e_agent", "a b", "ü", "x" * 300, "y" * 300]
    tokens = [escape_token(n) for n in names]
    assert len(set(tokens)) == len(names)
    for n in names:
        validate_address(type_address("ns", n))
        validate_address(queue_group("ns", n))
        validate_address(topic_name("ns", n))
    validate_address(runtime_address("ns", "abc") + "._replies")


async def test_failing_event_handler_is_retried_then_termed(server: NatsServer) -> None:
    a, b = await _connect(server, "host"), await _connect(server, "client")
    host = MailslotAgentRuntime(a, namespace="t", max_deliver=2, backoff=(0.1,))
    client = _client_runtime(b)
    try:
        await Worker.register(host, "worker", Worker)
        await client.add_subscription(TypeSubscription("news", "worker"))  # durable path
        await client.publish_message(News("boom"), TopicId("news", "w1"))
        w1 = await host.try_get_underlying_agent_instance(AgentId("worker", "w1"), Worker)
        await wait_for(lambda: len(w1.news) == 2)
        await client.publish_message(News("after"), TopicId("news", "w1"))
        await wait_for(lambda: "after@w1" in w1.news)
        await asyncio.sleep(0.5)  # the termed event does not come back
        assert w1.news == ["boom@w1", "boom@w1", "after@w1"]
    finally:
        await client.stop()
        await host.stop()
        await a.close()
        await b.close()


LEASE = 2.0


async def test_mail_for_an_unhosted_type_outlives_its_lease(server: NatsServer, lifecycle: Any) -> None:
    a, b = await _connect(server, "host-1"), await _connect(server, "client")
    caller = _client_runtime(b)
    address = type_address("t", "worker")
    try:
        host = MailslotAgentRuntime(a, namespace="t", ttl=LEASE)
        await Worker.register(host, "worker", Worker)
        assert (await caller.send_message(Task("first"), AgentId("worker", "w1"))).by == "worker/w1"
        await host.stop()
        await a.close()
        # Nobody hosts the type: the lease lapses, the mailbox goes offline, its retention
        # is a service's, and a task sent now waits there past any number of leases.
        record = await lifecycle.wait_offline(address)
        assert record.keep == SERVICE_KEEP
        pending = asyncio.create_task(caller.send_message(Task("while away"), AgentId("worker", "w1")))
        gone = time.monotonic()
        await wait_for(lambda: _holds_one(b.inspect(address)), timeout=10)
        await asyncio.sleep(max(0.0, 3 * LEASE - (time.monotonic() - gone)))  # > 2 sweeps, 3 leases
        assert (await b.inspect(address).stats()).total == 1 and not pending.done()
        assert not lifecycle.reclaimed(address) and await b.dead_letters.count() == 0
        # A runtime hosting the type later gets it.
        a = await _connect(server, "host-2")
        host = MailslotAgentRuntime(a, namespace="t", ttl=LEASE)
        await Worker.register(host, "worker", Worker)
        done = await asyncio.wait_for(pending, 30)
        assert done.body == "did while away for None"
        await host.stop()
    finally:
        await caller.stop()
        await a.close()
        await b.close()
