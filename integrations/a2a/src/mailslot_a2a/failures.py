"""What the runner does when a request fails with something that is not an A2A error.

Two kinds, both made visible as a FAILED task with the reason in its status message (in the
store, the task's log and the requester's reply mailbox), never as mail that comes back after
the ack wait again and again until it is dead-lettered:

* the executor raises (a bug, a model client's error): :class:`GuardedExecutor` turns the
  exception into the task's FAILED status with ``"<Type>: <message>"`` (a2a alone records
  FAILED with no reason), and the request is done;
* the runner itself fails around the executor (a store or a mail write refused, an event too
  large for a mail): the request is given back for another try (``nak`` after
  ``retry_delay`` times the attempt), and after ``max_attempts`` deliveries :func:`fail_task`
  records FAILED with the reason and the mail is termed with it (to dead letters).
"""

from __future__ import annotations

import logging

import mailslot
from a2a.helpers import new_task, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.cluster import ConcurrentTaskModificationError, VersionedEvent
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types.a2a_pb2 import Role, Task, TaskState, TaskStatus, TaskStatusUpdateEvent
from a2a.utils.errors import A2AError

from .events import MailslotEventStream
from .store import TERMINAL, VersionedMailslotTaskStore

log = logging.getLogger("mailslot_a2a.runner")

#: A reason is cut to this many characters (it travels in every copy of the status).
MAX_REASON = 1000
#: Saves of the FAILED status tried against concurrent writers before giving up.
_SAVE_TRIES = 5


def reason_of(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_REASON]


class GuardedExecutor(AgentExecutor):
    """``inner`` unchanged, except that an exception out of ``execute`` that is not an A2A
    error ends the task as FAILED with the exception as its reason."""

    def __init__(self, inner: AgentExecutor) -> None:
        self.inner = inner

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        try:
            await self.inner.execute(context, event_queue)
        except A2AError:
            raise
        except Exception as exc:
            if context.task_id is None or context.context_id is None:
                raise
            log.exception("executor failed on task %s", context.task_id)
            if context.current_task is None:  # the first event must be the Task
                await event_queue.enqueue_event(
                    new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED)
                )
            updater = TaskUpdater(event_queue, context.task_id, context.context_id)
            try:
                await updater.failed(message=new_text_message(reason_of(exc), role=Role.ROLE_AGENT))
            except Exception:  # e.g. the task had already ended: a2a's own handling then
                raise exc from None

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await self.inner.cancel(context, event_queue)


async def fail_task(
    store: VersionedMailslotTaskStore, events: MailslotEventStream, task_id: str, reason: str
) -> Task | None:
    """Record the task as FAILED with ``reason`` and publish it (store, log, reply mailbox);
    None if the task is unknown or has ended already."""
    context = ServerCallContext()
    for _ in range(_SAVE_TRIES):
        stored = await store.get(task_id, context)
        if stored is None or stored.task.status.state in TERMINAL:
            return None
        task = Task()
        task.CopyFrom(stored.task)
        task.status.CopyFrom(
            TaskStatus(
                state=TaskState.TASK_STATE_FAILED,
                message=new_text_message(
                    reason, role=Role.ROLE_AGENT, task_id=task_id, context_id=task.context_id
                ),
            )
        )
        task.status.timestamp.GetCurrentTime()
        event = TaskStatusUpdateEvent(task_id=task_id, context_id=task.context_id, status=task.status)
        try:
            version = await store.save(
                task, event=event, prev=stored.task, prev_version=stored.version, context=context
            )
        except ConcurrentTaskModificationError:
            continue
        try:
            await events.publish(task_id, VersionedEvent(event=event, version=version))
        except mailslot.MailslotError:
            log.exception("task %s is FAILED in the store; its event could not be mailed", task_id)
        return task
    return None


__all__ = ["MAX_REASON", "GuardedExecutor", "fail_task", "reason_of"]
