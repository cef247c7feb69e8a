"""Helpers shared by the LangGraph integration tests (imported as a plain module)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypedDict

import mailslot
import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from mailslot_langgraph import MailContext, MailslotCheckpointer, mailbox_of, request_reply, send_request
from pydantic import BaseModel
from testsupport import client_env


class Responder:
    """Answers every request in a mailbox with ``answer(payload)``; records what it got."""

    def __init__(self, mb: mailslot.Mailbox, answer: Callable[[Any], Any]) -> None:
        self.mb = mb
        self.answer = answer
        self.got: list[mailslot.Message] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for m in self.mb:
            self.got.append(m)
            payload = m.json() if m.content_type.startswith("application/json") else m.text()
            if m.reply_to:
                await m.reply(self.answer(payload))
            await m.ack()

    def start(self) -> Responder:
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


async def assert_empty(mb: mailslot.Mailbox, wait: float = 0.5) -> None:
    """Nothing (more) is waiting in ``mb``."""
    with pytest.raises(mailslot.Timeout):
        m = await mb.receive(timeout=wait)
        raise AssertionError(f"unexpected mail {m!r}: {m.data!r}")


HERE = Path(__file__).resolve().parent


def child_env(server: Any) -> dict[str, str]:
    """``testsupport.client_env`` for a child process here: this directory on its path too
    (the children import ``lg_helpers``), and no LangSmith tracing."""
    env = client_env(server)
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env["PYTHONPATH"]
    for var in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2"):
        env.pop(var, None)
    return env


def run_child(args: list[str], env: dict[str, str], *, expect_rc: int = 0, timeout: float = 120) -> Any:
    """Run ``python lg_proc.py args...``; its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "lg_proc.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == expect_rc, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


class Answer(BaseModel):
    n: int


class AskState(TypedDict, total=False):
    q: int
    cid: str
    answer: dict[str, Any]


def ask_graph(checkpointer: Any, *, crash_after_send: bool = False) -> Any:
    """START -> ask -> END: "ask" asks "coder" about ``q`` with ``request_reply`` (typed
    :class:`Answer`) and keeps the answer. ``crash_after_send``: the process dies (exit 17)
    right after sending, before the pause reaches the checkpointer."""

    async def ask(state: AskState, runtime: Runtime[MailContext]) -> AskState:
        mb = mailbox_of(runtime)
        if crash_after_send:
            await send_request(mb, "coder", {"q": state["q"]})
            os._exit(17)
        ans = await request_reply(mb, "coder", {"q": state["q"]}, response_schema=Answer)
        assert isinstance(ans, Answer)
        return {"answer": ans.model_dump()}

    g = StateGraph(AskState, context_schema=MailContext)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g.compile(checkpointer=checkpointer)


@contextlib.asynccontextmanager
async def checkpointer_for(ms: mailslot.Mailslot, store: str) -> AsyncIterator[Any]:
    """``mailslot:<namespace>``: the JetStream checkpointer (processes share only the broker);
    anything else: the path of a sqlite file."""
    if store.startswith("mailslot:"):
        yield MailslotCheckpointer(ms, namespace=store.removeprefix("mailslot:"))
    else:
        async with AsyncSqliteSaver.from_conn_string(store) as saver:
            yield saver
