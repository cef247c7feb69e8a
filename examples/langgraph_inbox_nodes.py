"""A LangGraph triage loop built from mail nodes: ``receive_node`` takes the next mail into
the state (most urgent first), a router decides, ``send_node`` forwards it. The mailbox
reaches the nodes through the graph's runtime context (``MailContext``), not a global.

Uses ``MAILSLOT_URL`` (+ ``MAILSLOT_CREDENTIALS``) when set, else starts its own nats-server
in a temp dir and stops it at the end (``_broker.py`` beside this file).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import mailslot
from _broker import broker
from langgraph.graph import END, START, StateGraph
from mailslot_langgraph import Mail, MailContext, receive_node, send_node


class Triage(TypedDict, total=False):
    mail: Mail
    handled: int


def route(state: Triage) -> str:
    return "page_oncall" if state["mail"]["priority"] in ("critical", "urgent") else "to_backlog"


def count(state: Triage) -> Triage:
    return {"handled": state.get("handled", 0) + 1}


def more(state: Triage) -> str:
    return "inbox" if state["handled"] < 3 else END


def build() -> Any:
    def forward(s: Triage) -> str:
        return f"{s['mail']['payload']} (from {s['mail']['sender']})"

    g = StateGraph(Triage, context_schema=MailContext)
    g.add_node("inbox", receive_node(timeout=30))
    g.add_node("page_oncall", send_node("oncall", forward, priority="critical"))
    g.add_node("to_backlog", send_node("backlog", forward, priority="low"))
    g.add_node("count", count)
    g.add_edge(START, "inbox")
    g.add_conditional_edges("inbox", route, ["page_oncall", "to_backlog"])
    g.add_edge("page_oncall", "count")
    g.add_edge("to_backlog", "count")
    g.add_conditional_edges("count", more, ["inbox", END])
    return g.compile()


async def main() -> None:
    async with mailslot.connect(name="triage") as ms:
        await ms.send("triage", "typo in docs", priority="low", sender="alice")
        await ms.send("triage", "disk 95% full", priority="urgent", sender="monitor")
        await ms.send("triage", "rename a variable", sender="bob")
        mb = await ms.open("triage")
        out = await build().ainvoke({"handled": 0}, context=MailContext(mailbox=mb))
        print("handled:", out["handled"])
        oncall = await ms.open("oncall")
        backlog = await ms.open("backlog")
        page = await oncall.receive(timeout=10)
        print("oncall:", page.text(), page.priority.label)
        later = [await backlog.receive(timeout=10) for _ in range(2)]
        print("backlog:", [m.text() for m in later])
        assert page.text() == "disk 95% full (from monitor)" and len(later) == 2
        for m in [page, *later]:
            await m.ack()
    print("example: OK")


if __name__ == "__main__":
    with broker():
        asyncio.run(main())
