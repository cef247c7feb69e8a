"""Crew progress as Mailslot traffic: broadcast events and/or mail to a supervisor.

CrewAI emits its events on one process-wide bus and runs sync handlers on its own thread
pool, so a handler must not wait for the network: the crew would stall behind the broker.
:class:`CrewProgress` turns each event into a small JSON dict in the handler and puts it on
a bounded queue; one daemon thread sends from that queue through the sync twin. When the
queue is full the oldest event is dropped (and counted): progress is telemetry, the crew's
own work must never block on it.

Events (``kind``): ``crew_started``, ``task_started``, ``tool_used``, ``tool_failed``,
``task_completed``, ``task_failed``, ``crew_completed``, ``crew_failed``. Broadcast topic:
``<topic>.<kind>`` (default ``crew.progress.task_completed``, ...), so a dashboard subscribes
to ``crew.progress.>``.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

import mailslot
from crewai import Crew
from crewai.events import BaseEventListener
from crewai.events.event_bus import CrewAIEventsBus
from crewai.events.types.crew_events import (
    CrewBaseEvent,
    CrewKickoffCompletedEvent,
    CrewKickoffFailedEvent,
    CrewKickoffStartedEvent,
)
from crewai.events.types.task_events import TaskCompletedEvent, TaskFailedEvent, TaskStartedEvent
from crewai.events.types.tool_usage_events import ToolUsageErrorEvent, ToolUsageFinishedEvent
from mailslot.sync import SyncMailbox, SyncMailslot

ALL_KINDS = (
    "crew_started",
    "task_started",
    "tool_used",
    "tool_failed",
    "task_completed",
    "task_failed",
    "crew_completed",
    "crew_failed",
)
#: What a supervisor gets by mail by default: outcomes, not chatter.
SUPERVISOR_KINDS = ("task_completed", "task_failed", "crew_completed", "crew_failed")


def _clip(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else str(getattr(value, "raw", value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _task_name(task: Any) -> str | None:
    if task is None:
        return None
    return getattr(task, "name", None) or _clip(getattr(task, "description", ""), 120)


class CrewProgress(BaseEventListener):
    """Publishes crew progress without blocking the crew.

    ``topic`` (None to not broadcast) is the topic prefix; ``supervisor`` an address that
    gets the ``supervisor_kinds`` events by mail (``thread_id`` = the crew run's id).
    ``crew`` limits the listener to one crew (the bus is process-wide). Call :meth:`flush`
    to wait until everything queued was sent, :meth:`close` to unregister and stop.
    """

    def __init__(
        self,
        client: SyncMailslot | SyncMailbox,
        *,
        topic: str | None = "crew.progress",
        supervisor: str | None = None,
        kinds: Iterable[str] = ALL_KINDS,
        supervisor_kinds: Iterable[str] = SUPERVISOR_KINDS,
        crew: Any = None,
        durable: bool = False,
        max_output: int = 2000,
        max_queue: int = 1000,
    ) -> None:
        self._client = client
        self._topic = topic
        self._supervisor = supervisor
        self._kinds = frozenset(kinds)
        self._supervisor_kinds = frozenset(supervisor_kinds)
        self._crew = crew
        self._durable = durable
        self._max_output = max_output
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._pending = 0
        self._cond = threading.Condition()
        self._handlers: list[tuple[type, Callable[..., Any]]] = []
        self._closed = False
        self.sent = 0
        self.dropped = 0
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._drain, name="mailslot-crew-progress", daemon=True)
        self._thread.start()
        super().__init__()

    # -- registration -----------------------------------------------------------------------

    def setup_listeners(self, crewai_event_bus: CrewAIEventsBus) -> None:
        def on(event_type: type, fn: Callable[[Any, Any], dict[str, Any] | None]) -> None:
            def handler(source: Any, event: Any) -> None:
                if self._closed or not self._mine(source, event):
                    return
                body = fn(source, event)
                if body is not None:
                    crew = self._crew if self._crew is not None else getattr(event, "crew", None)
                    if crew is None and isinstance(source, Crew):
                        crew = source
                    body["crew"] = getattr(crew, "name", None) or getattr(event, "crew_name", None)
                    if self._crew is not None:
                        body["run"] = str(self._crew.id)
                    self._enqueue(body)

            handler.__name__ = f"mailslot_{event_type.__name__}"
            crewai_event_bus.on(event_type)(handler)
            self._handlers.append((event_type, handler))

        clip = self._max_output
        on(CrewKickoffStartedEvent, lambda s, e: {"kind": "crew_started", "inputs": e.inputs or {}})
        on(TaskStartedEvent, lambda s, e: {"kind": "task_started", "task": _task_name(e.task)})
        on(
            ToolUsageFinishedEvent,
            lambda s, e: {
                "kind": "tool_used",
                "tool": e.tool_name,
                "args": e.tool_args if isinstance(e.tool_args, dict) else str(e.tool_args),
                "output": _clip(e.output, clip),
            },
        )
        on(
            ToolUsageErrorEvent,
            lambda s, e: {"kind": "tool_failed", "tool": e.tool_name, "error": _clip(e.error, clip)},
        )
        on(
            TaskCompletedEvent,
            lambda s, e: {
                "kind": "task_completed",
                "task": _task_name(e.task),
                "output": _clip(e.output, clip),
            },
        )
        on(
            TaskFailedEvent,
            lambda s, e: {"kind": "task_failed", "task": _task_name(e.task), "error": _clip(e.error, clip)},
        )
        on(
            CrewKickoffCompletedEvent,
            lambda s, e: {"kind": "crew_completed", "output": _clip(e.output, clip)},
        )
        on(CrewKickoffFailedEvent, lambda s, e: {"kind": "crew_failed", "error": _clip(e.error, clip)})

    def _mine(self, source: Any, event: Any) -> bool:
        crew = self._crew
        if crew is None:
            return True
        if source is crew or getattr(event, "crew", None) is crew:
            return True
        if isinstance(event, CrewBaseEvent):  # crew events come from the crew itself
            return False
        task = getattr(event, "task", None)
        tasks = getattr(crew, "tasks", [])
        if task is not None:
            return any(task is t for t in tasks)
        task_id = getattr(event, "task_id", None)
        return task_id is not None and task_id in {str(t.id) for t in tasks}

    # -- queue --------------------------------------------------------------------------------

    def _enqueue(self, body: dict[str, Any]) -> None:
        if body["kind"] not in self._kinds:
            return
        body["at"] = datetime.now(timezone.utc).isoformat()
        with self._cond:
            self._pending += 1
        while True:
            try:
                self._queue.put_nowait(body)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()
                    self._done(dropped=True)

    def _done(self, *, dropped: bool = False) -> None:
        with self._cond:
            self._pending -= 1
            if dropped:
                self.dropped += 1
            self._cond.notify_all()

    def _drain(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            try:
                self._deliver(body)
                self.sent += 1
            except Exception as exc:  # progress must never take the crew down
                self.errors.append(exc)
            finally:
                self._done()

    def _deliver(self, body: dict[str, Any]) -> None:
        kind = body["kind"]
        if self._topic is not None:
            publish = getattr(self._client, "publish", None)
            if publish is None:  # a mailbox: publish through nothing but its own client
                raise mailslot.InvalidInput("broadcast needs a SyncMailslot client, not a mailbox")
            publish(f"{self._topic}.{kind}", body, durable=self._durable)
        if self._supervisor is not None and kind in self._supervisor_kinds:
            self._client.send(self._supervisor, body, thread_id=body.get("run"))

    # -- lifecycle -------------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every event handed to the listener so far was sent (or failed).

        Flushes CrewAI's own bus first, so events emitted before this call are included."""
        from crewai.events import crewai_event_bus

        deadline = time.monotonic() + timeout
        crewai_event_bus.flush(timeout)
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float = 30.0) -> None:
        """Unregister from the bus, send what is queued, stop the sender thread."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        from crewai.events import crewai_event_bus

        for event_type, handler in self._handlers:
            crewai_event_bus.off(event_type, handler)
        self._handlers.clear()
        self._queue.put(None)
        self._thread.join(timeout)

    def __enter__(self) -> CrewProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ALL_KINDS", "SUPERVISOR_KINDS", "CrewProgress"]
