"""The A2A HTTP front: plain A2A JSON-RPC over HTTP to any agent registered in Mailslot.

An A2A client that knows nothing of Mailslot gets store-and-forward: ``message/send`` to
``http://HOST:PORT/agents/<address>`` is queued in that agent's mailbox and answered with the
SUBMITTED task at once, whether the agent is online or not; ``tasks/get``, ``tasks/list`` and
``tasks/cancel`` read and write the shared task store. Each agent's card is served from the
registry at ``/agents/<address>/.well-known/agent-card.json`` (so ``create_client(
"http://HOST:PORT/agents/<address>")`` finds it), listing the HTTP binding first and the
Mailslot one after it. Push-notification configs are kept in the state store and honoured by
the front (:mod:`mailslot_a2a.webhooks`), also after it restarts: delivery replays the task's
event log from a cursor of its own, so it takes nothing from a client streaming the same task
(``SubscribeToTask`` with ``X-Mailslot-Subscriber: <name>`` goes on from that name's cursor;
without the header a stream replays the task's whole log).

The JSON-RPC layer is a2a-sdk's own (``create_jsonrpc_routes``): parse errors, unknown methods
and bad params get the SDK's error codes; an unknown agent is ``-32602`` (invalid params) and
an oversize message ``-32600`` (payload too large), both before anything is written.

On an agent credential (``mailslot.connect(url, credentials=<agent file>)``) the front fronts
that one agent, by its own choice: its tasks live in the agent's own state (``ms.state`` is
the agent's part of the bucket there), where no other agent's runner reads or writes, so a
task it took for another address would never be run nor answered there. Such a credential
could list the registry and read other agents' cards (``ms.agents()``, and ``ms.agent(other)``
as that lists it, through the sidecar), but the front does not: it reads the agent's own card
by its address (``ms.agent(address)``, directly, no sidecar needed), any other address is
unknown to this front (``-32602``), and ``/agents`` lists that one agent. On a tenant
credential nothing of that applies: the registry is listed.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import mailslot
import uvicorn
from a2a.server.context import ServerCallContext
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.routes.common import DefaultServerCallContextBuilder
from a2a.types.a2a_pb2 import AgentInterface, Task, TaskPushNotificationConfig
from a2a.utils.errors import InvalidParamsError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .cards import PROTOCOL_VERSION, card_to_json, mailslot_interface, to_a2a
from .desk import AGENT_STATE_KEY, SUBSCRIBER_STATE_KEY, TaskDesk, reply_address
from .store import NAMESPACE, TERMINAL, MailslotPushConfigStore
from .webhooks import Webhooks

#: The requester name of the front: its reply mailboxes are ``<name>.t-<task id>``.
DEFAULT_NAME = "a2a-front"
#: The header naming a streaming HTTP client, so that its ``SubscribeToTask`` goes on from
#: where its last stream stopped (without it a stream replays the task's whole log).
SUBSCRIBER_HEADER = "X-Mailslot-Subscriber"
#: How long a registry listing answers "is this agent known" before it is read again.
REGISTRY_CACHE = 2.0


class _AgentContext(DefaultServerCallContextBuilder):
    """Names the agent of the request (the URL's ``{agent}``) in the call context."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state[AGENT_STATE_KEY] = request.path_params["agent"]
        subscriber = request.headers.get(SUBSCRIBER_HEADER)
        if subscriber:
            context.state[SUBSCRIBER_STATE_KEY] = subscriber
        return context


class FrontDesk(TaskDesk):
    """The front's desk: only registered agents (online or offline, mailbox kept) are
    admitted, and tasks with push configs get their webhooks delivered."""

    def __init__(
        self, ms: mailslot.Mailslot, *, name: str, namespace: str, webhook_client: httpx.AsyncClient | None
    ):
        self.push_configs = MailslotPushConfigStore(ms, namespace=namespace)
        super().__init__(ms, requester=name, namespace=namespace, push_config_store=self.push_configs)
        self.webhooks = Webhooks(
            self.push_configs, self.follow, reader=f"webhooks@{name}", client=webhook_client
        )
        self._known: dict[str, mailslot.AgentCard] = {}
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def card_of(self, agent: str) -> mailslot.AgentCard | None:
        own = self.ms.agent_address
        if own is not None:  # an agent credential: its own card, read by its address
            return await self.ms.agent(agent, include_offline=True) if agent == own else None
        async with self._lock:
            if agent not in self._known or time.monotonic() - self._read_at > REGISTRY_CACHE:
                cards = await self.ms.agents(include_offline=True)
                self._known = {c.address: c for c in cards if c.address}
                self._read_at = time.monotonic()
        return self._known.get(agent)

    async def admit(self, agent: str, context: ServerCallContext) -> None:
        await super().admit(agent, context)
        if await self.card_of(agent) is None:
            raise InvalidParamsError(message=f"no agent {agent!r} is registered in Mailslot")

    async def submitted(self, task: Task, context: ServerCallContext) -> None:
        if await self.push_configs.get_info(task.id, context):
            self.webhooks.watch(task.id, context)

    async def resume(self) -> int:
        """Deliver again for every task of this front that has webhooks and whose updates
        are not all delivered (after a restart); returns how many."""
        resumed = 0
        for task_id in await self.push_configs.tasks():
            route = await self.store.records.route(task_id)
            if route is None or route.reply_to != reply_address(self.requester, task_id):
                continue  # another front's task
            found = await self.store.records.read(task_id)
            if found is not None and (
                found[0].status.state not in TERMINAL
                or await self.feed.pending(task_id, self.webhooks.reader)
            ):
                self.webhooks.watch(task_id, ServerCallContext())
                resumed += 1
        return resumed

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        config = await super().on_create_task_push_notification_config(params, context)
        self.webhooks.watch(params.task_id, context)
        return config


class Front:
    """The HTTP front's app on a Mailslot client; ``base_url`` is how clients reach it (for
    the interface URLs in the cards)."""

    def __init__(
        self,
        ms: mailslot.Mailslot,
        *,
        base_url: str,
        name: str = DEFAULT_NAME,
        namespace: str = NAMESPACE,
        webhook_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.ms = ms
        self.base_url = base_url.rstrip("/")
        self.desk = FrontDesk(ms, name=name, namespace=namespace, webhook_client=webhook_client)
        rpc = create_jsonrpc_routes(self.desk, "/agents/{agent}", context_builder=_AgentContext())
        self.app = Starlette(
            routes=[
                *rpc,
                Route("/agents/{agent}/.well-known/agent-card.json", self._card, methods=["GET"]),
                Route("/agents", self._agents, methods=["GET"]),
            ]
        )

    async def start(self) -> Front:
        """Resume webhook delivery left unfinished by an earlier run of this front."""
        await self.desk.resume()
        return self

    def agent_url(self, agent: str) -> str:
        return f"{self.base_url}/agents/{agent}"

    def card_for(self, card: mailslot.AgentCard) -> dict[str, object]:
        assert card.address
        http = AgentInterface(
            url=self.agent_url(card.address), protocol_binding="JSONRPC", protocol_version=PROTOCOL_VERSION
        )
        return card_to_json(to_a2a(card, interfaces=[http, mailslot_interface(card.address)]))

    async def _card(self, request: Request) -> Response:
        agent = request.path_params["agent"]
        card = await self.desk.card_of(agent)
        if card is None:
            return JSONResponse({"error": f"no agent {agent!r} is registered in Mailslot"}, status_code=404)
        return JSONResponse(self.card_for(card))

    async def _agents(self, request: Request) -> Response:
        own = self.ms.agent_address
        if own is not None:  # an agent credential: the front fronts its own agent only
            card = await self.desk.card_of(own)
            cards = [card] if card is not None else []
        else:
            cards = await self.ms.agents(include_offline=True)
        return JSONResponse(
            [{"address": c.address, "url": self.agent_url(c.address)} for c in cards if c.address]
        )

    async def close(self) -> None:
        await self.desk.webhooks.close()


async def serve_http(
    ms: mailslot.Mailslot, *, host: str, port: int, name: str = DEFAULT_NAME, namespace: str = NAMESPACE
) -> None:
    """Serve the front on ``host:port`` until cancelled (or SIGINT/SIGTERM)."""
    front = Front(ms, base_url=f"http://{host}:{port}", name=name, namespace=namespace)
    server = uvicorn.Server(uvicorn.Config(front.app, host=host, port=port, log_level="warning"))
    await front.start()
    try:
        await server.serve()
    finally:
        await front.close()


__all__ = ["DEFAULT_NAME", "SUBSCRIBER_HEADER", "Front", "FrontDesk", "serve_http"]
