"""Two replicas of one agent share its mailbox and the task store: one killed mid-task (SIGKILL,
in a process of its own), the other finishes the task; it is neither lost nor silently done
twice (the events show both runs; one artifact, one COMPLETED)."""

from __future__ import annotations

from pathlib import Path

from a2a.types.a2a_pb2 import GetTaskRequest, SubscribeToTaskRequest, TaskState
from a2a_support import EchoExecutor, kinds, reply_text, user_request
from testsupport import PYTHON, client_env, unique, wait_for

PROC = Path(__file__).with_name("a2a_agent_proc.py")
ACK_WAIT = 2.0


async def test_replica_killed_mid_task_the_other_finishes_it(
    shared_server, a2a_client, runner, children
) -> None:
    agent, requester = unique("pair"), unique("asker")
    client = await a2a_client(agent, requester=requester)
    task = [ev async for ev in client.send_message(user_request("survive"))][-1].task

    doomed = children.spawn([PYTHON, str(PROC), agent, "50", "0.2", str(ACK_WAIT)], client_env(shared_server))
    assert await children.result(doomed, timeout=60) == {"ready": agent}
    assert await children.result(doomed, timeout=30) == {"started": task.id}

    async def working() -> bool:
        t = await client.get_task(GetTaskRequest(id=task.id))
        return t.status.state == TaskState.TASK_STATE_WORKING and len(t.history) >= 3

    await wait_for(working, timeout=20)  # mid-task: some of its steps are recorded
    survivor = EchoExecutor(steps=1)
    await runner(agent, survivor, ack_wait=ACK_WAIT)  # the second replica
    children.kill(doomed)

    async def completed() -> bool:
        t = await client.get_task(GetTaskRequest(id=task.id))
        return t.status.state == TaskState.TASK_STATE_COMPLETED

    await wait_for(completed, timeout=30)
    done = await client.get_task(GetTaskRequest(id=task.id))
    assert reply_text(done) == "echo: survive" and len(done.artifacts) == 1
    assert survivor.started == [task.id]
    seen = kinds([ev async for ev in client.subscribe(SubscribeToTaskRequest(id=task.id))])
    assert seen[0] == "task:SUBMITTED" and seen[-1] == "status_update:COMPLETED"
    assert seen.count("status_update:COMPLETED") == 1 and seen.count("artifact_update") == 1
    # The restart is visible: the first run's steps, then the second run starts working again.
    assert seen.count("status_update:WORKING") >= 4
