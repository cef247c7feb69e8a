"""REGISTER / REPORT / DISCOVER / UNREGISTER as the mq9 SDK and its A2A layer send them."""

from __future__ import annotations

import asyncio

import mailslot
from mailslot_mq9 import Gateway


async def test_register_discover_text_and_all_unregister(mq9_fresh) -> None:
    c, ms, _ = mq9_fresh
    translator = {
        "name": "translator",
        "mailbox": "mq9://broker/agents.translator",
        "payload": "French to English",
    }
    coder = {
        "name": "coder",
        "mailbox": "agents.coder",
        "payload": "writes python",
        "agent_card": {"name": "coder", "skills": [{"id": "py", "name": "python"}]},
    }
    await c.ok("AGENT.REGISTER", translator)
    await c.ok("AGENT.REGISTER", coder)
    # A Mailslot agent is discoverable by mq9 clients too.
    native = await ms.open("reviewer", card={"name": "Reviewer", "description": "reviews python code"})

    everyone = (await c.ok("AGENT.DISCOVER", {"limit": 20, "page": 1}))["agents"]
    # by address (agents.coder, agents.translator, reviewer)
    assert [a["mailbox"] for a in everyone] == ["agents.coder", "mq9://broker/agents.translator", "reviewer"]
    assert everyone[1] == translator  # the registered JSON, unchanged
    found = (await c.ok("AGENT.DISCOVER", {"text": "python", "limit": 20, "page": 1}))["agents"]
    assert {a["name"] for a in found} == {"coder", "Reviewer"}
    assert (await c.ok("AGENT.DISCOVER", {"text": "french", "limit": 20, "page": 1}))["agents"] == [
        translator
    ]
    # semantic: the same keyword match (no vector index); it wins over text
    sem = await c.ok("AGENT.DISCOVER", {"semantic": "english", "text": "python", "limit": 20, "page": 1})
    assert sem["agents"] == [translator]
    # pages
    p1 = (await c.ok("AGENT.DISCOVER", {"limit": 2, "page": 1}))["agents"]
    p2 = (await c.ok("AGENT.DISCOVER", {"limit": 2, "page": 2}))["agents"]
    assert len(p1) == 2 and len(p2) == 1 and p1 + p2 == everyone

    await c.ok("AGENT.REPORT", {"name": "coder", "mailbox": "agents.coder", "report_info": "busy"})
    await c.ok("AGENT.UNREGISTER", {"mailbox": "agents.coder"})
    left = (await c.ok("AGENT.DISCOVER", {}))["agents"]
    assert [a["name"] for a in left] == ["translator", "Reviewer"]
    out = await c.call("AGENT.REPORT", {"name": "coder", "mailbox": "agents.coder"})
    assert out["error"] == "agent agents.coder is not registered"
    await native.close()


async def test_registration_lapses_without_report(server) -> None:
    from mq9_support import Mq9, connect

    cr = server.credentials
    ms = await mailslot.connect(server.url, user=cr.user, password=cr.password)
    nc = await connect(server)
    try:
        async with Gateway(ms, agent_ttl=1):
            c = Mq9(nc)
            await c.ok("AGENT.REGISTER", {"name": "brief", "mailbox": "brief"})
            await c.ok("AGENT.REGISTER", {"name": "kept", "mailbox": "kept"})
            for _ in range(3):
                await asyncio.sleep(0.6)
                await c.ok("AGENT.REPORT", {"mailbox": "kept"})
            names = [a["name"] for a in (await c.ok("AGENT.DISCOVER", {}))["agents"]]
            assert names == ["kept"]
    finally:
        await nc.close()
        await ms.close()
