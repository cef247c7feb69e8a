"""Child process for the cross-process tests: ``python lg_proc.py <start|restart|resume> STORE THREAD``.

STORE is ``mailslot:<namespace>`` (the JetStream checkpointer: the processes share only the
broker) or the path of a sqlite file.

``start`` runs a graph that asks "coder" and pauses (``--crash`` dies right after sending,
before the pause is checkpointed); ``restart`` continues a crashed run; ``resume`` is a new
process that finds the waiting thread in the checkpointer and resumes it when the
reply is there. Connects with MAILSLOT_URL / MAILSLOT_CREDENTIALS from the environment.
"""

from __future__ import annotations

import asyncio
import json
import sys

import mailslot
from lg_helpers import ask_graph, checkpointer_for
from mailslot_langgraph import MailContext, Resumer


async def main(cmd: str, store: str, thread: str, *flags: str) -> None:
    cfg = {"configurable": {"thread_id": thread}}
    async with mailslot.connect(name="planner-proc") as ms, checkpointer_for(ms, store) as saver:
        mb = await ms.open("planner", ttl=60)
        ctx = MailContext(mailbox=mb)
        app = ask_graph(saver, crash_after_send="--crash" in flags)
        if cmd == "start":
            out = await app.ainvoke({"q": 21}, cfg, context=ctx, version="v2", durability="sync")
            print(json.dumps({"interrupts": [i.value for i in out.interrupts]}), flush=True)
        elif cmd == "restart":
            out = await app.ainvoke(None, cfg, context=ctx, version="v2", durability="sync")
            print(json.dumps({"interrupts": [i.value for i in out.interrupts]}), flush=True)
        elif cmd == "resume":
            async with Resumer(app, mb, context=ctx) as res:
                waits = await res.scan()
                done = await res.next_result(timeout=60)
            print(
                json.dumps({"waits": waits, "value": done.output.value, "error": repr(done.error)}),
                flush=True,
            )
        await mb.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
