"""A LangGraph agent asks another agent by mail and *stops*; it is resumed later, by a new
process, when the reply is there. Offline (no LLM, no API keys).

1. The planner's graph reaches ``request_reply``: it mails a question to "coder" and pauses
   (``interrupt()``); the state goes to the JetStream checkpointer (``MailslotCheckpointer``,
   on the broker's state store) and the planner shuts down.
2. "coder" comes online, answers, and goes away. The reply waits in the planner's mailbox.
3. A fresh planner (new connection, new checkpointer object; it shares only the broker with
   the first, so it could run on another machine) runs a ``Resumer``: it finds the paused
   thread, collects the reply and resumes the graph, which gets the typed answer. The
   question was sent once, although the node ran twice.

``--sqlite`` keeps the state in a sqlite file instead (``langgraph-checkpoint-sqlite``; then
the resuming process needs that file). Uses ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``)
when set, else starts its own nats-server in a temp dir and stops it at the end
(``_broker.py`` beside this file).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypedDict

import mailslot
from _broker import broker
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from mailslot_langgraph import MailContext, MailslotCheckpointer, Resumer, mailbox_of, request_reply
from pydantic import BaseModel


class Estimate(BaseModel):
    days: int
    note: str


class State(TypedDict, total=False):
    task: str
    estimate: dict[str, Any]
    plan: str


async def ask_coder(state: State, runtime: Runtime[MailContext]) -> State:
    print(f"  [ask_coder runs for {state['task']!r}]")
    est = await request_reply(mailbox_of(runtime), "coder", {"task": state["task"]}, response_schema=Estimate)
    return {"estimate": est.model_dump()}


def make_plan(state: State) -> State:
    e = state["estimate"]
    return {"plan": f"{state['task']}: {e['days']} days ({e['note']})"}


def build(checkpointer: Any) -> Any:
    g = StateGraph(State, context_schema=MailContext)
    g.add_node("ask_coder", ask_coder)
    g.add_node("make_plan", make_plan)
    g.add_edge(START, "ask_coder")
    g.add_edge("ask_coder", "make_plan")
    g.add_edge("make_plan", END)
    return g.compile(checkpointer=checkpointer)


@contextlib.asynccontextmanager
async def checkpointer(ms: mailslot.Mailslot, db: str | None) -> AsyncIterator[Any]:
    """The graph's state: on the broker (default), or in the sqlite file ``db``."""
    if db is None:
        yield MailslotCheckpointer(ms, namespace="example-durable-ask")
    else:
        async with AsyncSqliteSaver.from_conn_string(db) as saver:
            yield saver


async def main(*, sqlite: bool) -> None:
    db = str(Path(tempfile.mkdtemp(prefix="lg-example-")) / "planner.db") if sqlite else None
    cfg = {"configurable": {"thread_id": "roadmap-42"}}
    # 1. The planner runs until it must wait for the coder, then exits.
    async with mailslot.connect(name="planner") as ms, checkpointer(ms, db) as saver:
        mb = await ms.open("planner")
        out = await build(saver).ainvoke(
            {"task": "add SSO"}, cfg, context=MailContext(mailbox=mb), version="v2"
        )
        print("planner paused, waiting for:", out.interrupts[0].value["correlation_id"])
        await mb.close()

    # 2. The coder answers while the planner is gone.
    async with mailslot.connect(name="coder") as ms:
        coder = await ms.open("coder")
        q = await coder.receive(timeout=30)
        print("coder got:", q.json(), "thread", q.thread_id)
        await q.reply(Estimate(days=3, note="needs an OIDC library"))
        await q.ack()
        await coder.close()

    # 3. A new planner process resumes the thread from the checkpointer.
    async with mailslot.connect(name="planner") as ms, checkpointer(ms, db) as saver:
        mb = await ms.open("planner")
        app = build(saver)
        async with Resumer(app, mb, context=MailContext(mailbox=mb)) as resumer:
            print("waits found:", await resumer.scan())
            done = await resumer.next_result(timeout=60)
        print("plan:", done.output.value["plan"])
        assert done.output.value["plan"] == "add SSO: 3 days (needs an OIDC library)"
        await saver.adelete_thread("roadmap-42")  # an example leaves nothing behind
        await mb.close()
    print("example: OK")


if __name__ == "__main__":
    with broker():
        asyncio.run(main(sqlite="--sqlite" in sys.argv[1:]))
