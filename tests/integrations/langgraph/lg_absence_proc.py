"""Child process for test_durable_absence.py:
``python lg_absence_proc.py <start|resume> DB THREAD TTL [KEEP]``.

``start`` opens "planner" with a lease of TTL seconds (and retention KEEP, else the default),
runs a graph that asks "coder" with ``request_reply`` and pauses, prints the interrupt, then
waits in a :class:`Resumer` for the reply, the way a long-running agent would; the test kills
it there. ``resume`` is a fresh process: it opens "planner" again, finds the waiting thread in
the sqlite checkpointer, resumes it with the reply, and prints what the graph returned, whether
any second result came, and what a second scan finds. Connects with MAILSLOT_URL /
MAILSLOT_CREDENTIALS from the environment.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, TypedDict

import mailslot
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from mailslot_langgraph import MailContext, Resumer, mailbox_of, request_reply
from pydantic import BaseModel


def report(result: Any) -> None:
    """One result line for the test (``Children.result`` in tests/integrations/conftest.py)."""
    print("RESULT " + json.dumps(result), flush=True)


class Answer(BaseModel):
    n: int
    note: str


class State(TypedDict, total=False):
    q: int
    answer: dict[str, Any]
    finished: int


def build(saver: Any) -> Any:
    async def ask(state: State, runtime: Runtime[MailContext]) -> State:
        ans = await request_reply(mailbox_of(runtime), "coder", {"q": state["q"]}, response_schema=Answer)
        return {"answer": ans.model_dump()}

    def finish(state: State) -> State:
        # Runs once per completion of the graph: a second resume would make it 2.
        return {"finished": state.get("finished", 0) + 1}

    g = StateGraph(State, context_schema=MailContext)
    g.add_node("ask", ask)
    g.add_node("finish", finish)
    g.add_edge(START, "ask")
    g.add_edge("ask", "finish")
    g.add_edge("finish", END)
    return g.compile(checkpointer=saver)


async def main(cmd: str, db: str, thread: str, ttl: str, keep: str | None = None) -> None:
    cfg = {"configurable": {"thread_id": thread}}
    async with (
        mailslot.connect(name=f"planner-{cmd}") as ms,
        AsyncSqliteSaver.from_conn_string(db) as saver,
    ):
        mb = await ms.open("planner", ttl=float(ttl), keep=None if keep is None else float(keep))
        ctx = MailContext(mailbox=mb)
        app = build(saver)
        async with Resumer(app, mb, context=ctx) as res:
            if cmd == "start":
                out = await res.ainvoke({"q": 21}, cfg, durability="sync")
                report({"interrupts": [i.value for i in out.interrupts], "waiting": res.waiting})
                await asyncio.sleep(3600)  # waiting for the reply; killed before it comes
                return
            assert cmd == "resume", cmd
            waits = await res.scan()
            done = await res.next_result(timeout=60)
            try:
                extra: Any = await res.next_result(timeout=1.5)
            except asyncio.TimeoutError:
                extra = None
        async with Resumer(app, mb, context=ctx) as again:
            rescan = await again.scan()
        state = await app.aget_state(cfg)
        report(
            {
                "waits": waits,
                "thread_id": done.thread_id,
                "correlation_id": done.correlation_id,
                "error": repr(done.error),
                "value": done.output.value if done.output is not None else None,
                "extra": repr(extra) if extra is not None else None,
                "rescan": rescan,
                "next": list(state.next),
                "pending": len(state.interrupts),
            }
        )
        await mb.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
