"""Drives ``mailslot-mcp`` on mcp 2.x with the mcp 2.x SDK client, in both protocol eras,
over stdio and streamable HTTP. Run by test_mcp2.py with the ``.venv-mcp2`` interpreter (the
test process itself has mcp 1.30): it needs MAILSLOT_URL and MAILSLOT_CREDENTIALS (the test's
nats-server) in its environment, and prints one JSON object of measurements and findings on
its last line; the test asserts on them.

    .venv-mcp2/bin/python tests/integrations/mcp/mcp2_driver.py

For each transport and Client mode ("auto" -> 2026-07-28, "legacy" -> 2025-11-25): agents A
and B; list tools; B subscribes to its inbox (``client.listen`` at 2026, ``resources/subscribe``
at the handshake) and blocks in ``wait_for_mail``; A sends; the wait returns the mail (timed
from the send), progress and the update notification arrive; B acks; A cannot settle B's mail
nor watch B's inbox; a wait abandoned by the client (the 2.x client sends a cancel) gives back
the mail it took, so the next wait gets it delivered a second time. Over HTTP, also the 401s.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_http_proc import http_server_process

warnings.simplefilter("ignore", DeprecationWarning)  # subscribe_resource() at 2026 is deprecated
PYTHON = sys.executable
ERAS = {"auto": "2026-07-28", "legacy": "2025-11-25"}


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


class Agent:
    """One agent's SDK client and what the server pushed to it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.updates: list[tuple[str, float]] = []  # (uri, perf_counter) from message_handler
        self.updated = anyio.Event()
        self.client: Client

    async def on_message(self, message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            self.updates.append((str(message.params.uri), time.perf_counter()))
            self.updated.set()

    async def call(self, tool: str, **args: Any) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args)
        if result.is_error:
            raise AssertionError(f"{tool} failed: {result.content}")
        assert result.structured_content is not None
        return result.structured_content

    async def error(self, tool: str, **args: Any) -> str:
        result = await self.client.call_tool(tool, args)
        assert result.is_error, result.structured_content
        return str(result.content[0].text)  # type: ignore[union-attr]

    async def wait_for_mail(self, started: anyio.Event, progress: list[float], **args: Any) -> dict[str, Any]:
        """``wait_for_mail``; ``started`` is set at its first progress notification, which the
        server sends once the wait is in place."""

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append(p)
            started.set()

        r = await self.client.call_tool("wait_for_mail", args, progress_callback=on_progress)
        assert not r.is_error and r.structured_content is not None, r.content
        return r.structured_content


#: Sends timed per transport and era (the first one is the check of what arrived).
ROUNDS = 5


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


async def scenario(a: Agent, b: Agent, mode: str) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": b.client.protocol_version}
    tools = await a.client.list_tools()
    defs = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools.tools]
    out["tools"] = len(defs)
    out["tool_chars"] = len(json.dumps(defs))
    inbox = f"mailbox://{b.name}/inbox"
    listened: list[tuple[str, float]] = []
    heard = anyio.Event()
    timings: dict[str, list[float]] = {"send_ms": [], "wake_ms": [], "update_ms": []}
    async with contextlib.AsyncExitStack() as stack, anyio.create_task_group() as tg:
        if mode == "legacy":
            await b.client.subscribe_resource(inbox)
        else:
            sub = await stack.enter_async_context(b.client.listen(resource_subscriptions=[inbox]))

            async def drain() -> None:
                async for event in sub:
                    listened.append((event.uri, time.perf_counter()))
                    heard.set()

            tg.start_soon(drain)
        for n in range(ROUNDS):
            started, done = anyio.Event(), anyio.Event()
            progress: list[float] = []
            got: dict[str, Any] = {}
            woke = 0.0

            async def waiter() -> None:
                nonlocal woke
                got.update(await b.wait_for_mail(started, progress, timeout=20))  # noqa: B023
                woke = time.perf_counter()
                done.set()  # noqa: B023

            tg.start_soon(waiter)
            with anyio.fail_after(10):
                await started.wait()
            await anyio.sleep(0.2)  # also lets the previous ack's update arrive before the reset
            b.updated, heard = anyio.Event(), anyio.Event()
            b.updates.clear()
            listened.clear()
            seen, updated = (b.updates, b.updated) if mode == "legacy" else (listened, heard)
            t0 = time.perf_counter()
            receipt = await a.call("send", to=b.name, body={"task": n}, priority="urgent")
            timings["send_ms"].append((time.perf_counter() - t0) * 1000)
            with anyio.fail_after(10):
                await done.wait()
                await updated.wait()
            timings["wake_ms"].append((woke - t0) * 1000)
            timings["update_ms"].append((seen[0][1] - t0) * 1000)
            (mail,) = got["mail"]
            if n == 0:
                out["progress"] = len(progress)
                out["update_uris"] = sorted({u for u, _ in seen})
                out["mail_ok"] = [mail["from"], mail["body"], mail["id"]] == [
                    a.name,
                    {"task": 0},
                    receipt["id"],
                ]
                out["a_cannot_ack"] = "not holding" in await a.error("ack", ids=[mail["id"]])
            out["acked"] = (await b.call("ack", ids=[mail["id"]]))["ack"] == [mail["id"]]
        tg.cancel_scope.cancel()
    out.update({k: median(v) for k, v in timings.items()})
    out["samples"] = timings
    out["inbox_after_ack"] = len((await b.call("inbox"))["mail"])
    progress = []
    t0 = time.perf_counter()
    empty = await b.wait_for_mail(anyio.Event(), progress, timeout=1.5)  # the server's bound
    out["bound"] = [empty.get("note", ""), time.perf_counter() - t0, len(progress)]
    read = await b.client.read_resource(inbox)
    out["resource_read"] = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    out["a_cannot_watch_b"] = await _refused_watch(a, inbox, mode)
    caps = b.client.server_capabilities
    out["subscribe_capability"] = caps.resources.subscribe if caps and caps.resources else None
    out["claims"] = await _claims(a, b)
    out["typed_error"] = await a.error("send", to=b.name, body="x", ttl=-1)
    out["ask_reply"] = await _ask_reply(a, b)
    out.update(await _cancel_gives_back(a, b))
    return out


async def _ask_reply(a: Agent, b: Agent) -> list[Any]:
    """A asks B and gives up waiting; B answers; A's second ask gets the durable reply."""
    pending = await a.call("ask", to=b.name, body="status?", timeout=0.3)
    (question,) = (await b.call("wait_for_mail", timeout=5))["mail"]
    await b.call("reply", id=question["id"], body="green")
    answer = await a.call("ask", correlation_id=pending["correlation_id"], timeout=5)
    return [pending["pending"], answer["reply"]["body"], answer["reply"]["from"] == b.name]


async def _claims(a: Agent, b: Agent) -> list[str]:
    """A claims a path; B's claim of it fails naming A; A releases it and B gets it."""
    path = f"src/{unique('app')}.py"
    await a.call("claims", action="claim", paths=[path], ttl=60, reason="fix")
    conflict = await b.error("claims", action="claim", paths=[path], ttl=60)
    await a.call("claims", action="release", paths=[path])
    (mine,) = (await b.call("claims", action="claim", paths=[path], ttl=60))["claims"]
    await b.call("claims", action="release", paths=[path])
    return [conflict, mine["holder"]]


async def _refused_watch(a: Agent, uri: str, mode: str) -> str:
    """The error A gets when it asks for B's inbox updates (empty if it was let through)."""
    try:
        if mode == "legacy":
            await a.client.subscribe_resource(uri)
        else:
            async with a.client.listen(resource_subscriptions=[uri]):
                pass
    except Exception as exc:
        return str(exc)
    return ""


async def _cancel_gives_back(a: Agent, b: Agent) -> dict[str, Any]:
    """B's wait (urgent and above only) takes a low-priority mail it does not show, then B's
    caller gives up: the 2.x client tells the server, whose cancelled wait gives the mail back
    at once (a nak), so the next wait gets it delivered a second time. A wait the server did
    not cancel would keep the mail in its hands and hand it on undelivered again (1)."""
    started = anyio.Event()
    scope = anyio.CancelScope()

    async def given_up() -> None:
        with scope:
            await b.wait_for_mail(started, [], timeout=20, min_priority="critical")

    async with anyio.create_task_group() as tg:
        tg.start_soon(given_up)
        with anyio.fail_after(10):
            await started.wait()
        await a.call("send", to=b.name, body="below the filter", priority="low")
        await anyio.sleep(0.5)  # the wait receives it into the server's hands
        scope.cancel()
    t0 = time.perf_counter()
    got = await b.call("wait_for_mail", timeout=5)
    back_ms = (time.perf_counter() - t0) * 1000
    (mail,) = got["mail"]
    await b.call("ack", ids=[mail["id"]])
    return {"cancel_redelivered": mail.get("deliveries", 1), "cancel_back_ms": back_ms}


# --- transports -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def stdio_agent(name: str, mode: str) -> AsyncIterator[Agent]:
    agent = Agent(name)
    env = {k: v for k, v in os.environ.items() if k.startswith("MAILSLOT_")}
    params = StdioServerParameters(
        command=PYTHON, args=["-m", "mailslot_mcp"], env={**env, "MAILSLOT_AGENT": name}
    )
    async with Client(params, mode=mode, message_handler=agent.on_message) as agent.client:
        yield agent


@contextlib.asynccontextmanager
async def http_agent(url: str, name: str, token: str, mode: str) -> AsyncIterator[Agent]:
    agent = Agent(name)
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
        Client(
            streamable_http_client(url, http_client=http), mode=mode, message_handler=agent.on_message
        ) as agent.client,
    ):
        yield agent


async def unauthorized(url: str) -> list[int]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=10) as http:
        none = await http.post(url, json=body, headers=headers)
        bad = await http.post(url, json=body, headers={**headers, "Authorization": "Bearer not-a-token"})
    return [none.status_code, bad.status_code]


async def main() -> None:
    results: dict[str, Any] = {}
    for mode in ERAS:
        a_name, b_name = unique("alice"), unique("bob")
        async with stdio_agent(a_name, mode) as a, stdio_agent(b_name, mode) as b:
            results[f"stdio/{mode}"] = await scenario(a, b, mode)
    a_name, b_name = unique("alice"), unique("bob")
    tokens = {a_name: secrets.token_urlsafe(24), b_name: secrets.token_urlsafe(24)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokens.json"
        path.write_text(json.dumps(tokens))
        with http_server_process(PYTHON, path, Path(tmp) / "server.log") as (url, _):
            results.update(await http_cases(url, tokens, a_name, b_name))
    print(json.dumps(results))


async def http_cases(url: str, tokens: dict[str, str], a_name: str, b_name: str) -> dict[str, Any]:
    results: dict[str, Any] = {"http/401": await unauthorized(url)}
    for mode in ERAS:
        async with (
            http_agent(url, a_name, tokens[a_name], mode) as a,
            http_agent(url, b_name, tokens[b_name], mode) as b,
        ):
            results[f"http/{mode}"] = await scenario(a, b, mode)
    return results


if __name__ == "__main__":
    anyio.run(main)
