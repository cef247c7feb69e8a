"""The task stores on the SDK's state store, through a2a's own interfaces: the plain TaskStore
(last write wins, the SDK's listing filters and pages) and the VersionedTaskStore (a stale
version is refused, a cancel overwrites any non-terminal state but never a terminal one)."""

from __future__ import annotations

import uuid

import pytest
from a2a.helpers import new_task
from a2a.server.cluster import ConcurrentTaskModificationError, TaskVersion
from a2a.server.context import ServerCallContext
from a2a.types.a2a_pb2 import ListTasksRequest, Task, TaskState
from mailslot_a2a import MailslotTaskStore, VersionedMailslotTaskStore
from testsupport import unique

CTX = ServerCallContext()


def task(state: TaskState = TaskState.TASK_STATE_SUBMITTED, *, context_id: str = "ctx") -> Task:
    return new_task(str(uuid.uuid4()), context_id, state)


async def test_plain_store_round_trip_list_and_delete(shared_ms) -> None:
    store = MailslotTaskStore(shared_ms, namespace=unique("a2a-plain"))
    a, b = task(context_id="one"), task(TaskState.TASK_STATE_WORKING, context_id="two")
    for t in (a, b):
        await store.save(t, CTX)
    assert await store.get(a.id, CTX) == a
    b.status.state = TaskState.TASK_STATE_COMPLETED
    await store.save(b, CTX)  # last write wins
    assert (await store.get(b.id, CTX)).status.state == TaskState.TASK_STATE_COMPLETED
    page = await store.list(ListTasksRequest(context_id="two"), CTX)
    assert [t.id for t in page.tasks] == [b.id] and page.total_size == 1
    assert len((await store.list(ListTasksRequest(page_size=1), CTX)).tasks) == 1
    await store.delete(a.id, CTX)
    assert await store.get(a.id, CTX) is None


async def test_versioned_store_refuses_stale_versions(shared_ms) -> None:
    store = VersionedMailslotTaskStore(shared_ms, namespace=unique("a2a-versioned"))
    t = task()
    v1 = await store.save(t, event=t, prev=None, prev_version=TaskVersion.MISSING, context=CTX)
    with pytest.raises(ConcurrentTaskModificationError):  # a second first write
        await store.save(t, event=t, prev=None, prev_version=TaskVersion.MISSING, context=CTX)
    t.status.state = TaskState.TASK_STATE_WORKING
    v2 = await store.save(t, event=None, prev=None, prev_version=v1, context=CTX)
    assert v2.is_after(v1)
    with pytest.raises(ConcurrentTaskModificationError):  # a writer still at v1
        await store.save(t, event=None, prev=None, prev_version=v1, context=CTX)
    stored = await store.get(t.id, CTX)
    assert (
        stored is not None
        and stored.version == v2
        and stored.task.status.state == TaskState.TASK_STATE_WORKING
    )


async def test_versioned_cancel_overwrites_running_but_not_finished(shared_ms) -> None:
    store = VersionedMailslotTaskStore(shared_ms, namespace=unique("a2a-cancel"))
    t = task(TaskState.TASK_STATE_WORKING)
    await store.save(t, event=t, prev=None, prev_version=TaskVersion.MISSING, context=CTX)
    canceled = Task()
    canceled.CopyFrom(t)
    canceled.status.state = TaskState.TASK_STATE_CANCELED
    # A cancel from a process that read the task long ago (no version) still lands ...
    await store.save(canceled, event=None, prev=None, prev_version=TaskVersion.MISSING, context=CTX)
    assert (await store.get(t.id, CTX)).task.status.state == TaskState.TASK_STATE_CANCELED
    # ... but not on a task that already finished, nor on one that does not exist.
    with pytest.raises(ConcurrentTaskModificationError):
        await store.save(canceled, event=None, prev=None, prev_version=TaskVersion.MISSING, context=CTX)
    ghost = task(TaskState.TASK_STATE_CANCELED)
    with pytest.raises(ConcurrentTaskModificationError):
        await store.save(ghost, event=None, prev=None, prev_version=TaskVersion.MISSING, context=CTX)
