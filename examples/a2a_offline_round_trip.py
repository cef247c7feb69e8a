"""A2A over Mailslot: a task sent to an A2A agent that is offline, its result collected later.

1. A planner sends a task with a2a-sdk's own ``Client`` over the ``MAILSLOT`` binding while the
   agent is not running: it gets the task back SUBMITTED at once, and goes away.
2. The agent comes online: an unchanged a2a ``AgentExecutor`` served from its mailbox by
   ``A2ARunner``; it finds the task waiting and completes it.
3. The planner, restarted (a new connection), reads the COMPLETED task with its artifact and
   every event it missed, each once.
4. A plain A2A HTTP client (httpx, JSON-RPC) sends to the same agent through the HTTP front,
   which queues it in the agent's mailbox.

Uses ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``) when set, else starts its own nats-server
in a temp dir and stops it at the end (``_broker.py`` beside this file).
"""

from __future__ import annotations

import asyncio
import socket

import httpx
import mailslot
import uvicorn
from _broker import broker
from a2a.helpers import get_artifact_text, new_task, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentSkill,
    GetTaskRequest,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from mailslot_a2a import A2ARunner, client_factory, mailslot_interface
from mailslot_a2a.front import Front


class Translator(AgentExecutor):
    """An ordinary A2A executor: nothing in it knows about Mailslot."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        if context.current_task is None:
            await event_queue.enqueue_event(
                new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED)
            )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.start_work()
        text = context.get_user_input()
        await updater.add_artifact([new_text_message(text.upper()).parts[0]], name="translation")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id and context.context_id
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


CARD = AgentCard(
    name="translator",
    description="translates text into upper case",
    version="1.0.0",
    supported_interfaces=[mailslot_interface("translator")],
    capabilities=AgentCapabilities(streaming=True, push_notifications=True),
    default_input_modes=["text/plain"],
    default_output_modes=["text/plain"],
    skills=[AgentSkill(id="translate", name="translate", description="upper-case text", tags=["text"])],
)


def request(text: str) -> SendMessageRequest:
    req = SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))
    req.configuration.return_immediately = True
    return req


async def over_mailslot() -> None:
    async with mailslot.connect(name="planner") as ms:  # 1. the agent is not running
        client = client_factory(ms, requester="planner").create(CARD)
        task = [ev async for ev in client.send_message(request("hello, offline agent"))][-1].task
        print("sent while the agent is offline:", TaskState.Name(task.status.state))
        await client.close()

    agent_ms = await mailslot.connect(name="translator")  # 2. the agent comes online
    planner_ms = await mailslot.connect(name="planner")  # 3. the planner, restarted
    async with agent_ms, planner_ms, A2ARunner(agent_ms, Translator(), CARD, address="translator"):
        client = client_factory(planner_ms, requester="planner").create(CARD)
        events = [ev async for ev in client.subscribe(SubscribeToTaskRequest(id=task.id))]
        print("events it missed:", [ev.WhichOneof("payload") for ev in events])
        done = await client.get_task(GetTaskRequest(id=task.id))
        print("later:", TaskState.Name(done.status.state), "->", get_artifact_text(done.artifacts[0]))
        assert done.status.state == TaskState.TASK_STATE_COMPLETED
        await client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def over_http() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with mailslot.connect(name="a2a-front") as ms:
        front = Front(ms, base_url=base)
        server = uvicorn.Server(uvicorn.Config(front.app, host="127.0.0.1", port=port, log_level="warning"))
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110  (uvicorn has no started event)
            await asyncio.sleep(0.02)
        try:
            async with httpx.AsyncClient(base_url=base, headers={"A2A-Version": "1.0"}) as http:
                card = (await http.get("/agents/translator/.well-known/agent-card.json")).json()
                print("card from the registry:", [i["protocolBinding"] for i in card["supportedInterfaces"]])
                msg = {"role": "ROLE_USER", "messageId": "m-1", "parts": [{"text": "hello over http"}]}
                body = {"message": msg, "configuration": {"returnImmediately": True}}
                sent = await http.post(
                    "/agents/translator",
                    json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": body},
                )
                task = sent.json()["result"]["task"]
                print("plain JSON-RPC send:", task["status"]["state"])
                agent_ms = await mailslot.connect(name="translator")
                async with agent_ms, A2ARunner(agent_ms, Translator(), CARD, address="translator"):
                    for _ in range(200):
                        got = await http.post(
                            "/agents/translator",
                            json={
                                "jsonrpc": "2.0",
                                "id": 2,
                                "method": "GetTask",
                                "params": {"id": task["id"]},
                            },
                        )
                        result = got.json()["result"]
                        if result["status"]["state"] == "TASK_STATE_COMPLETED":
                            break
                        await asyncio.sleep(0.05)
                print(
                    "over http, later:",
                    result["status"]["state"],
                    "->",
                    result["artifacts"][0]["parts"][0]["text"],
                )
                assert result["status"]["state"] == "TASK_STATE_COMPLETED"
        finally:
            server.should_exit = True
            await serving
            await front.close()


async def main() -> None:
    await over_mailslot()
    await over_http()
    print("example: OK")


if __name__ == "__main__":
    with broker():
        asyncio.run(main())
