"""Several readers of one task: the front's webhook delivery, an HTTP ``SubscribeToTask``
(SSE) and a Mailslot-transport subscriber each get every event of the task once, also those
that happened before they started reading; none takes events from another."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from a2a.client import ClientConfig, create_client
from a2a.types.a2a_pb2 import StreamResponse, SubscribeToTaskRequest
from a2a_support import V1, EchoExecutor, hook_app, kinds, register_offline, rpc, send_params, serving
from google.protobuf.json_format import ParseDict
from mailslot_a2a.front import SUBSCRIBER_HEADER
from testsupport import unique, wait_for

EXPECTED = [
    "task:SUBMITTED",
    "status_update:WORKING",
    *["status_update:WORKING"] * 3,
    "artifact_update",
    "status_update:COMPLETED",
]


async def test_webhook_sse_and_mailslot_subscriber_each_get_every_event(front, runner, a2a_client) -> None:
    _, base = front
    agent = unique("fanout")
    await register_offline(runner, agent)
    received: list[dict[str, Any]] = []
    async with serving(hook_app(received)) as hook_url:
        async with httpx.AsyncClient(base_url=base, headers=V1) as http:
            params = send_params("fan out", taskPushNotificationConfig={"url": f"{hook_url}/hook"})
            task_id = (await http.post(f"/agents/{agent}", json=rpc("SendMessage", params))).json()["result"][
                "task"
            ]["id"]
        sse = await create_client(f"{base}/agents/{agent}", client_config=ClientConfig(streaming=True))
        mail = await a2a_client(agent, requester=unique("watcher"))
        try:
            await runner(agent, EchoExecutor(steps=3, delay=0.3))

            async def over_sse() -> list[StreamResponse]:
                return [ev async for ev in sse.subscribe(SubscribeToTaskRequest(id=task_id))]

            async def over_mailslot() -> list[StreamResponse]:
                await asyncio.sleep(0.7)  # starts mid-task: what happened before is replayed
                return [ev async for ev in mail.subscribe(SubscribeToTaskRequest(id=task_id))]

            by_sse, by_mail = await asyncio.wait_for(asyncio.gather(over_sse(), over_mailslot()), 30)
            await wait_for(lambda: len(received) >= len(EXPECTED), timeout=20)
            await asyncio.sleep(0.3)
        finally:
            await sse.close()
    by_hook = [ParseDict(r, StreamResponse()) for r in received]
    assert kinds(by_sse) == EXPECTED
    assert kinds(by_mail) == EXPECTED
    assert kinds(by_hook) == EXPECTED


async def test_a_named_http_subscriber_goes_on_where_it_stopped(front, runner) -> None:
    _, base = front
    agent = unique("resume")
    await register_offline(runner, agent)
    async with httpx.AsyncClient(base_url=base, headers=V1, timeout=30) as http:
        sent = (await http.post(f"/agents/{agent}", json=rpc("SendMessage", send_params("again")))).json()
        task_id = sent["result"]["task"]["id"]
        await runner(agent, EchoExecutor(steps=3, delay=0.3))
        me = {SUBSCRIBER_HEADER: unique("reader"), "Accept": "text/event-stream"}

        async def stream(limit: int | None) -> list[str]:
            got: list[str] = []
            body = rpc("SubscribeToTask", {"id": task_id})
            async with http.stream("POST", f"/agents/{agent}", json=body, headers=me) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        got.append(line)
                        if limit is not None and len(got) == limit:
                            break
            return got

        first = await stream(2)  # goes away after two events ...
        await asyncio.sleep(1.5)  # ... while the task goes on
        rest = await stream(None)
    assert len(first) == 2 and len(first) + len(rest) == len(EXPECTED)
    assert "COMPLETED" in rest[-1]
