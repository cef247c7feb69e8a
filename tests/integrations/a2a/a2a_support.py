"""Shared pieces of the A2A tests: an offline-able executor, cards, requests (importable by
the agent child process, which has no fixtures)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvicorn
from a2a.helpers import get_artifact_text, new_task, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentSkill,
    Role,
    SendMessageRequest,
    StreamResponse,
    Task,
    TaskState,
)
from google.protobuf.json_format import MessageToDict
from mailslot_a2a import A2ARunner, mailslot_interface
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

#: The header a raw JSON-RPC client sends to speak A2A 1.0.
V1 = {"A2A-Version": "1.0"}


class EchoExecutor(AgentExecutor):
    """Echoes the text as an artifact; ``steps`` intermediate status updates ``delay`` s apart
    (a task that is "mid-way" for a while); ``gate`` holds the work until it is set."""

    def __init__(self, *, steps: int = 0, delay: float = 0.0, gate: asyncio.Event | None = None) -> None:
        self.steps = steps
        self.delay = delay
        self.gate = gate
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        if context.current_task is None:
            await event_queue.enqueue_event(
                new_task(
                    context.task_id,
                    context.context_id,
                    TaskState.TASK_STATE_SUBMITTED,
                    history=[context.message] if context.message else [],
                )
            )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        if self.gate is not None:
            await self.gate.wait()
        self.started.append(context.task_id)
        await updater.start_work()
        for i in range(self.steps):
            await asyncio.sleep(self.delay)
            await updater.update_status(
                TaskState.TASK_STATE_WORKING, message=new_text_message(f"step {i + 1}", role=Role.ROLE_AGENT)
            )
        await updater.add_artifact(
            [new_text_message(f"echo: {context.get_user_input()}").parts[0]], name="reply"
        )
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        self.cancelled.append(context.task_id)
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def agent_card(address: str) -> AgentCard:
    return AgentCard(
        name=f"echo {address}",
        description="echoes text once it is online",
        version="1.0.0",
        supported_interfaces=[mailslot_interface(address)],
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="echo", description="echo text", tags=["demo"])],
    )


def user_request(text: str, *, immediately: bool = True) -> SendMessageRequest:
    req = SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))
    req.configuration.return_immediately = immediately
    return req


def reply_text(task: Task) -> str | None:
    return get_artifact_text(task.artifacts[0]) if task.artifacts else None


def kinds(events: list[StreamResponse]) -> list[str]:
    """``payload:state`` per event, e.g. ``task:SUBMITTED``, ``status_update:WORKING``."""
    out = []
    for ev in events:
        which = ev.WhichOneof("payload")
        if which in ("task", "status_update"):
            state = getattr(ev, which).status.state
            out.append(f"{which}:{TaskState.Name(state).removeprefix('TASK_STATE_')}")
        else:
            out.append(str(which))
    return out


def rpc(method: str, params: dict[str, Any], rid: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


def send_params(text: str, **configuration: Any) -> dict[str, Any]:
    """``SendMessage`` params as JSON (return immediately), with more ``configuration``."""
    params = MessageToDict(user_request(text))
    params["configuration"].update(configuration)
    return params


def hook_app(received: list[dict[str, Any]]) -> Starlette:
    """A webhook at ``/hook`` that records the JSON body of every POST."""

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({})

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(app: Any, port: int | None = None) -> AsyncIterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 (a free port by default) in this loop; yields
    its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def register_offline(runner: Callable[..., Awaitable[A2ARunner]], address: str) -> None:
    """Put ``address`` in the registry as an offline agent (its mailbox kept), as an agent
    that ran once and went away."""
    r = await runner(address, EchoExecutor())
    await r.close()
