"""The offline round trip through a2a-sdk's own Client on the MAILSLOT binding: a task sent
while its agent is not running is SUBMITTED at once; the agent starts later and completes it;
a client restarted in between gets the COMPLETED task and every event it missed, once."""

from __future__ import annotations

import asyncio
import time

import pytest
from a2a.types.a2a_pb2 import CancelTaskRequest, GetTaskRequest, SubscribeToTaskRequest, TaskState
from a2a.utils.errors import A2AError
from a2a_support import EchoExecutor, kinds, reply_text, user_request
from testsupport import unique, wait_for


async def test_send_offline_complete_later_restarted_client(a2a_client, runner) -> None:
    agent, requester = unique("echo"), unique("planner")
    client = await a2a_client(agent, requester=requester)
    sent = [ev async for ev in client.send_message(user_request("hello"))]
    task = sent[-1].task
    assert task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert (await client.get_task(GetTaskRequest(id=task.id))).status.state == TaskState.TASK_STATE_SUBMITTED
    await client.close()  # the requester goes away before the agent ever runs

    started = time.perf_counter()
    await runner(agent, EchoExecutor())

    later = await a2a_client(agent, requester=requester)  # a new connection: a restarted client

    async def completed() -> bool:
        t = await later.get_task(GetTaskRequest(id=task.id))
        return t.status.state == TaskState.TASK_STATE_COMPLETED

    await wait_for(completed, timeout=20, interval=0.01)
    print(f"agent start -> client sees COMPLETED: {(time.perf_counter() - started) * 1000:.0f} ms")
    done = await later.get_task(GetTaskRequest(id=task.id))
    assert reply_text(done) == "echo: hello"
    # Every event of the task, including those that happened while nobody listened, once.
    events = [ev async for ev in later.subscribe(SubscribeToTaskRequest(id=task.id))]
    assert kinds(events) == [
        "task:SUBMITTED",
        "status_update:WORKING",
        "artifact_update",
        "status_update:COMPLETED",
    ]
    with pytest.raises(A2AError):  # read to the end: a finished task has nothing more to stream
        [ev async for ev in later.subscribe(SubscribeToTaskRequest(id=task.id))]


async def test_subscribe_across_a_disconnect_yields_each_event_once(a2a_client, runner) -> None:
    agent, requester = unique("steps"), unique("watcher")
    client = await a2a_client(agent, requester=requester)
    task = [ev async for ev in client.send_message(user_request("slow"))][-1].task
    await runner(agent, EchoExecutor(steps=4, delay=0.2))
    seen = []
    async for ev in client.subscribe(SubscribeToTaskRequest(id=task.id)):
        seen.append(ev)
        if len(seen) == 3:
            break  # the subscriber goes away mid-task ...
    await client.close()
    await asyncio.sleep(1.0)  # ... while the rest happens
    again = await a2a_client(agent, requester=requester)
    seen += [ev async for ev in again.subscribe(SubscribeToTaskRequest(id=task.id))]
    assert kinds(seen) == [
        "task:SUBMITTED",
        "status_update:WORKING",
        *["status_update:WORKING"] * 4,
        "artifact_update",
        "status_update:COMPLETED",
    ]


async def test_cancel_a_queued_task_before_the_agent_is_online(a2a_client, runner) -> None:
    agent, requester = unique("late"), unique("canceller")
    client = await a2a_client(agent, requester=requester)
    keep = [ev async for ev in client.send_message(user_request("keep"))][-1].task
    drop = [ev async for ev in client.send_message(user_request("drop"))][-1].task
    canceled = await client.cancel_task(CancelTaskRequest(id=drop.id))
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    executor = EchoExecutor()
    await runner(agent, executor)

    async def kept_done() -> bool:
        t = await client.get_task(GetTaskRequest(id=keep.id))
        return t.status.state == TaskState.TASK_STATE_COMPLETED

    await wait_for(kept_done, timeout=20)
    await asyncio.sleep(0.3)  # the canceled task's request has reached the agent too
    assert (await client.get_task(GetTaskRequest(id=drop.id))).status.state == TaskState.TASK_STATE_CANCELED
    assert executor.started == [keep.id]  # the canceled one never ran
    events = [ev async for ev in client.subscribe(SubscribeToTaskRequest(id=drop.id))]
    assert kinds(events) == ["task:SUBMITTED", "status_update:CANCELED"]


async def test_mail_that_is_not_an_a2a_request_is_termed_and_the_agent_goes_on(
    a2a_client, runner, connect
) -> None:
    agent, requester = unique("sturdy"), unique("sender")
    other = await connect("stranger")
    await other.send(agent, {"hello": "not a2a"})  # queued before any A2A request
    client = await a2a_client(agent, requester=requester)
    task = [ev async for ev in client.send_message(user_request("after junk"))][-1].task
    r = await runner(agent, EchoExecutor())

    async def done() -> bool:
        t = await client.get_task(GetTaskRequest(id=task.id))
        return t.status.state == TaskState.TASK_STATE_COMPLETED

    await wait_for(done, timeout=20)
    # The runner counts a request once its mail is acked, just after the task completed.
    await wait_for(lambda: r.handled >= 1, timeout=10)
    assert r.handled == 1  # the junk was termed, not run, not retried
    assert (await other.inspect(agent).stats()).total == 0
