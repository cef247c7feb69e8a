"""Push-notification webhooks, delivered by the HTTP front from the task's event log.

An agent behind Mailslot needs no public URL and does not have to be online when a webhook is
down: every task event is kept in the task's log (:mod:`mailslot_a2a.feed`), and a pump reads
it in order from the front's own cursor (``webhooks@<front name>``) and POSTs each event (the
SDK's push payload: the ``StreamResponse`` as JSON, with ``X-A2A-Notification-Token`` /
``Authorization`` from the config) to every webhook configured for the task, retried with
exponential backoff (tenacity). The cursor moves past an event once every webhook has it (or
gave up), so a front that restarts resumes where delivery stopped, and a client streaming the
same task reads from a cursor of its own: nobody takes events from anybody else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import httpx
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.tasks import PushNotificationConfigStore
from a2a.types.a2a_pb2 import TaskPushNotificationConfig
from a2a.utils.proto_utils import to_stream_response
from google.protobuf.json_format import MessageToDict
from mailslot.tasks import cancel_and_wait
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger("mailslot_a2a.webhooks")


class Webhooks:
    """One delivery pump per task that has webhooks; ``follow`` is the desk's event reader,
    read as ``reader``."""

    def __init__(
        self,
        configs: PushNotificationConfigStore,
        follow: Callable[..., AsyncIterator[Event]],
        *,
        reader: str,
        client: httpx.AsyncClient | None = None,
        attempts: int = 6,
        backoff: float = 0.2,
        max_backoff: float = 10.0,
    ) -> None:
        self.configs = configs
        self._follow = follow
        self.reader = reader
        self._client = client or httpx.AsyncClient(timeout=10.0)
        self._own_client = client is None
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self.delivered = 0
        self.failed = 0

    def watch(self, task_id: str, context: ServerCallContext) -> None:
        """Deliver the task's events from now on (once per task; later configs join in)."""
        pump = self._pumps.get(task_id)
        if pump is None or pump.done():
            self._pumps[task_id] = asyncio.create_task(
                self._pump(task_id, context), name=f"a2a-webhooks:{task_id}"
            )

    async def _pump(self, task_id: str, context: ServerCallContext) -> None:
        try:
            async for event in self._follow(task_id, reader=self.reader, ack_first=False):
                for config in await self.configs.get_info(task_id, context):
                    await self._post(config, event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery for task %s stopped", task_id)
        finally:
            self._pumps.pop(task_id, None)

    async def _post(self, config: TaskPushNotificationConfig, event: Event) -> None:
        headers: dict[str, str] = {}
        if config.token:
            headers["X-A2A-Notification-Token"] = config.token
        if config.HasField("authentication") and config.authentication.scheme:
            headers["Authorization"] = (
                f"{config.authentication.scheme} {config.authentication.credentials}".strip()
            )
        body = MessageToDict(to_stream_response(event))
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=self.backoff, max=self.max_backoff),
                retry=retry_if_exception_type(httpx.HTTPError),
                reraise=True,
            ):
                with attempt:
                    response = await self._client.post(config.url, json=body, headers=headers)
                    response.raise_for_status()
            self.delivered += 1
        except httpx.HTTPError as exc:
            self.failed += 1
            log.warning("webhook %s gave up after %d attempts: %s", config.url, self.attempts, exc)

    async def close(self) -> None:
        await cancel_and_wait(list(self._pumps.values()))
        if self._own_client:
            await self._client.aclose()


__all__ = ["Webhooks"]
