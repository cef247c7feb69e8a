"""Cancel of a task while it runs at a replica, asked through the client transport or the HTTP
front: the replica is told at once and runs a2a's cancel path (the executor's ``cancel()`` is
called and its ``execute`` is cancelled), though ``execute`` never saves again; the task is
CANCELED once, its mail acked."""

from __future__ import annotations

import asyncio

import httpx
from a2a.helpers import new_task
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types.a2a_pb2 import CancelTaskRequest, GetTaskRequest, SubscribeToTaskRequest, TaskState
from a2a_support import V1, kinds, register_offline, rpc, send_params, user_request
from testsupport import unique, wait_for


class Waiter(AgentExecutor):
    """``execute`` starts work, then waits on an event nobody sets; ``cancel`` records that it
    was called (and says CANCELED, as an executor should)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.cancel_called: list[str] = []
        self.execute_cancelled: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        if context.current_task is None:
            await event_queue.enqueue_event(
                new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED)
            )
        await TaskUpdater(event_queue, context.task_id, context.context_id).start_work()
        self.entered.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.execute_cancelled.append(context.task_id)
            raise

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        self.cancel_called.append(context.task_id)
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


async def _working(get_state, executor: Waiter) -> None:
    await asyncio.wait_for(executor.entered.wait(), 20)

    async def working() -> bool:
        return await get_state() == TaskState.TASK_STATE_WORKING

    await wait_for(working, timeout=10)


async def test_cancel_through_the_transport_calls_the_running_executors_cancel(
    a2a_client, runner, connect
) -> None:
    agent, requester = unique("waiter"), unique("stopper")
    client = await a2a_client(agent, requester=requester)
    executor = Waiter()
    await runner(agent, executor)
    task = [ev async for ev in client.send_message(user_request("wait"))][-1].task

    async def state() -> TaskState:
        return (await client.get_task(GetTaskRequest(id=task.id))).status.state

    await _working(state, executor)
    canceled = await asyncio.wait_for(client.cancel_task(CancelTaskRequest(id=task.id)), 4)
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    assert executor.cancel_called == [task.id]  # told at once, before the answer
    await wait_for(lambda: executor.execute_cancelled == [task.id], timeout=5)
    ms = await connect("inspector")
    await wait_for(lambda: _empty(ms, agent), timeout=10)  # the request was acked
    events = [ev async for ev in client.subscribe(SubscribeToTaskRequest(id=task.id))]
    assert kinds(events) == ["task:SUBMITTED", "status_update:WORKING", "status_update:CANCELED"]


async def _empty(ms, agent: str) -> bool:
    return (await ms.inspect(agent).stats()).total == 0


async def test_cancel_through_the_front_calls_the_running_executors_cancel(front, runner) -> None:
    _, base = front
    agent = unique("http-waiter")
    await register_offline(runner, agent)
    executor = Waiter()
    await runner(agent, executor)
    async with httpx.AsyncClient(base_url=base, headers=V1, timeout=30) as http:
        sent = (await http.post(f"/agents/{agent}", json=rpc("SendMessage", send_params("wait")))).json()
        task_id = sent["result"]["task"]["id"]

        async def state() -> TaskState:
            got = (await http.post(f"/agents/{agent}", json=rpc("GetTask", {"id": task_id}, 2))).json()
            return TaskState.Value(got["result"]["status"]["state"])

        await _working(state, executor)
        canceled = (await http.post(f"/agents/{agent}", json=rpc("CancelTask", {"id": task_id}, 3))).json()
    assert canceled["result"]["status"]["state"] == "TASK_STATE_CANCELED"
    assert executor.cancel_called == [task_id]
    await wait_for(lambda: executor.execute_cancelled == [task_id], timeout=5)
