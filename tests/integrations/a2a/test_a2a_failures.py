"""A request that fails with something other than an A2A error is visible, not retried until
it is dead-lettered: an executor that raises ends its task FAILED with the exception as the
reason at once; a failure of the runner itself (here an artifact too large for the store) is
tried ``max_attempts`` times, then the task is FAILED with the reason and the mail termed
with it. The FAILED status, with its reason, is in the store, in the task's events and in the
requester's reply mailbox."""

from __future__ import annotations

import gc
import logging

from a2a.helpers import get_message_text, new_task, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types.a2a_pb2 import GetTaskRequest, SubscribeToTaskRequest, TaskState
from a2a_support import agent_card, kinds, user_request
from mailslot_a2a import A2ARunner, reply_address
from mailslot_a2a.codec import event_of, stream_of
from testsupport import unique, wait_for


class Failing(AgentExecutor):
    """Raises (``huge=False``) or emits an artifact larger than a state value (``huge=True``)."""

    def __init__(self, *, huge: bool = False) -> None:
        self.huge = huge
        self.calls = 0

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        self.calls += 1
        if context.current_task is None:
            await event_queue.enqueue_event(
                new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED)
            )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.start_work()
        if not self.huge:
            raise RuntimeError("the model crashed")
        await updater.add_artifact([new_text_message("x" * 1_100_000).parts[0]], name="huge")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None


async def _failed_everywhere(client, connect, requester: str, task_id: str) -> str:
    """The FAILED task's reason, checked to be the same in the store, the task's events and
    the requester's reply mailbox."""

    async def failed() -> bool:
        t = await client.get_task(GetTaskRequest(id=task_id))
        return t.status.state == TaskState.TASK_STATE_FAILED

    await wait_for(failed, timeout=20)
    stored = await client.get_task(GetTaskRequest(id=task_id))
    reason = get_message_text(stored.status.message)
    events = [ev async for ev in client.subscribe(SubscribeToTaskRequest(id=task_id))]
    assert kinds(events)[0] == "task:SUBMITTED" and kinds(events)[-1] == "status_update:FAILED"
    assert kinds(events).count("status_update:FAILED") == 1
    assert get_message_text(events[-1].status_update.status.message) == reason
    ms = await connect("reader")
    box = await ms.open(reply_address(requester, task_id))
    mailed = []
    while (msg := await box.receive(timeout=5)) is not None:
        await msg.ack()
        response = stream_of(msg.json())
        assert response is not None
        mailed.append(event_of(response))
        if len(mailed) == len(events):
            break
    await box.close()
    assert mailed[-1].status.state == TaskState.TASK_STATE_FAILED
    assert get_message_text(mailed[-1].status.message) == reason
    return reason


async def test_an_executor_that_raises_fails_its_task_with_the_reason_once(
    a2a_client, runner, connect
) -> None:
    agent, requester = unique("crash"), unique("asker")
    client = await a2a_client(agent, requester=requester)
    executor = Failing()
    r = await runner(agent, executor, ack_wait=2.0)
    task = [ev async for ev in client.send_message(user_request("go"))][-1].task
    reason = await _failed_everywhere(client, connect, requester, task.id)
    assert reason == "RuntimeError: the model crashed"
    ms = await connect("inspector")
    await wait_for(lambda: _settled(ms, agent), timeout=10)
    assert executor.calls == 1 and r.handled == 1  # done, not given back


async def test_a_runner_failure_is_tried_max_attempts_then_failed_and_termed(
    a2a_client, connect, caplog
) -> None:
    # a2a-sdk logs the failed save with its traceback and leaves the exception in its consumer
    # task unretrieved, which asyncio reports when the task is collected. Not kept in a log
    # record here, the task is collected below while the loop runs, not in some later GC pass
    # (Python 3.11's ast.parse fails when that report runs inside a GC pass it triggered).
    caplog.set_level(logging.CRITICAL, logger="a2a.server.agent_execution.active_task")
    agent, requester = unique("toobig"), unique("asker")
    client = await a2a_client(agent, requester=requester)
    executor = Failing(huge=True)
    options = {"ack_wait": 2.0, "max_attempts": 2, "retry_delay": 0.2}
    r = A2ARunner(await connect(agent), executor, agent_card(agent), address=agent, **options)
    async with r:
        task = [ev async for ev in client.send_message(user_request("go"))][-1].task
        reason = await _failed_everywhere(client, connect, requester, task.id)
        assert reason.startswith("runner failed 2 times: StateTooLarge")
        ms = await connect("inspector")
        await wait_for(lambda: _settled(ms, agent), timeout=10)
    assert executor.calls == 2 and r.failed == 1
    [dead] = await ms.dead_letters.list(agent)
    assert dead.as_dict()["reason"] == reason
    del r
    gc.collect()


async def _settled(ms, agent: str) -> bool:
    return (await ms.inspect(agent).stats()).total == 0
