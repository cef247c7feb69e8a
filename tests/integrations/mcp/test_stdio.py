"""The MCP server over stdio, spawned per agent the way a coding agent's host spawns it."""

from __future__ import annotations

import json
import time

import anyio
import pytest
from conftest import send_while_waiting, stdio_peer
from mcp import types
from mcp.shared.exceptions import McpError
from pydantic import AnyUrl
from testsupport import unique

MAX_TOOLS = 10


async def test_send_wakes_a_blocking_wait_ack_removes_it_identity_holds(mcp_env: dict[str, str]) -> None:
    alice, bob = unique("alice"), unique("bob")
    async with stdio_peer(mcp_env, alice) as a, stdio_peer(mcp_env, bob) as b:
        await b.session.subscribe_resource(AnyUrl(f"mailbox://{bob}/inbox"))
        wake = await send_while_waiting(a, b, to=bob, body={"task": 7}, priority="urgent", thread="t-1")
        print(f"\nstdio: send via MCP {wake.send_ms:.1f} ms, send -> wait returns {wake.wake_ms:.1f} ms")
        assert wake.receipt["to"] == bob and wake.receipt["duplicate"] is False
        assert wake.wake_ms < 1000  # measured and reported; the target is < 50 ms on an idle machine
        (mail,) = wake.mail
        assert mail["from"] == alice and mail["body"] == {"task": 7}
        assert mail["priority"] == "urgent" and mail["thread"] == "t-1"

        with anyio.fail_after(5):  # resources/updated for the subscribed inbox
            await b.updated.wait()
        assert b.updates[0] == f"mailbox://{bob}/inbox"

        inbox = await b.call("inbox")
        assert [m["id"] for m in inbox["mail"]] == [mail["id"]] and inbox["mail"][0]["held"] is True
        assert (await b.call("ack", ids=[mail["id"]]))["ack"] == [mail["id"]]
        assert (await b.call("inbox"))["mail"] == []
        again = await b.call("wait_for_mail", timeout=0.5)
        assert again["mail"] == [] and "no mail yet" in again["note"]

        dup = await a.call("send", to=bob, body="x", idempotency_key="k-1")
        assert (await a.call("send", to=bob, body="x", idempotency_key="k-1"))["duplicate"] is True
        assert dup["duplicate"] is False

        # identity: an extra "sender" argument is not part of the tool, the mail is from alice
        await a.call("send", to=bob, body="hi", thread="t-2", sender=unique("mallory"))
        (mail,) = (await b.call("wait_for_mail", timeout=5, thread="t-2"))["mail"]  # "x" waits
        assert mail["from"] == alice and mail["body"] == "hi"
        # alice can neither settle bob's mail nor read or subscribe to bob's inbox
        assert "not holding" in await a.error("ack", ids=[mail["id"]])
        with pytest.raises(McpError, match="only your own mailbox"):
            await a.session.read_resource(AnyUrl(f"mailbox://{bob}/inbox"))
        with pytest.raises(McpError, match="only to your own mailbox"):
            await a.session.subscribe_resource(AnyUrl(f"mailbox://{bob}/inbox"))
        own = await b.session.read_resource(AnyUrl(f"mailbox://{bob}/inbox"))
        assert mail["id"] in [m["id"] for m in json.loads(own.contents[0].text)]  # type: ignore[union-attr]
        thread = await b.session.read_resource(AnyUrl(f"mailbox://{bob}/thread/t-2"))
        assert [m["body"] for m in json.loads(thread.contents[0].text)] == ["hi"]  # type: ignore[union-attr]


async def test_offline_mail_waits_and_comes_urgent_first(mcp_env: dict[str, str]) -> None:
    alice, bob = unique("alice"), unique("bob")
    async with stdio_peer(mcp_env, alice) as a:  # bob's server is not running
        await a.call("send", to=bob, body="routine", priority="low")
        await a.call("send", to=bob, body="later", priority="normal")
        await a.call("send", to=bob, body="fire", priority="urgent")
        directory = {c["address"]: c for c in (await a.call("agents"))["agents"]}
        assert directory[alice]["status"] == "online" and directory[alice]["you"] is True
        assert bob not in directory or directory[bob]["status"] != "online"
    async with stdio_peer(mcp_env, bob) as b:
        urgent_only = await b.call("wait_for_mail", timeout=5, min_priority="urgent")
        assert [m["body"] for m in urgent_only["mail"]] == ["fire"]
        rest: list[str] = []
        while len(rest) < 2:  # a wait returns what has arrived; the model calls again for more
            rest += [m["body"] for m in (await b.call("wait_for_mail", timeout=5))["mail"]]
        assert rest == ["later", "routine"]


async def test_tools_errors_the_wait_bound_and_cancellation(mcp_env: dict[str, str]) -> None:
    """One agent alone: few, compact tool definitions; SDK errors as typed tool errors; a
    wait bounded by the server, with progress along the way; a cancelled wait stops there.

    mcp 1.x clients send no notifications/cancelled when a caller gives up, 2.x clients do:
    sent here through the SDK client's session, as a 2.x client would. A wait that kept
    running would take the next mail and answer a request nobody reads any more."""
    solo = unique("solo")
    async with stdio_peer(mcp_env, solo) as a:
        tools = (await a.session.list_tools()).tools
        size = len(json.dumps([t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]))
        print(f"\n{len(tools)} tools, definitions {size} characters")
        assert len(tools) <= MAX_TOOLS
        assert {"send", "wait_for_mail", "inbox", "ack"} <= {t.name for t in tools}
        assert size < 5000
        for t in tools:  # identity comes from the connection, never an argument
            assert not {"agent", "sender", "from", "me"} & set(t.inputSchema.get("properties", {}))
        assert any("at most 50 s" in (t.description or "") for t in tools)

        bad = await a.error("send", to="no spaces allowed", body="x")
        assert "InvalidAddress" in bad and "Traceback" not in bad  # the SDK's type, then its message
        assert "InvalidTTL" in await a.error("send", to=unique("x"), body="x", ttl=-1)
        assert "InvalidInput" in await a.error("dead_letters", action="requeue")

        progress: list[float] = []
        start = time.perf_counter()
        out = await a.wait_for_mail(progress, timeout=2)
        took = time.perf_counter() - start
        assert out["mail"] == [] and "call wait_for_mail again" in out["note"]
        assert 1.9 <= took < 8.0  # bounded by the server: 2 s, plus a loaded machine's slack
        assert len(progress) >= 2 and progress == sorted(progress)

        started = anyio.Event()
        answer: list[str] = []

        async def wait() -> None:
            with pytest.raises(McpError) as err:
                await a.wait_for_mail([], started, timeout=20)
            answer.append(err.value.error.message)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            with anyio.fail_after(10):
                await started.wait()
            request_id = a.session._request_id - 1  # the wait's id: the last request sent
            cancel = types.CancelledNotification(
                params=types.CancelledNotificationParams(requestId=request_id, reason="user gave up")
            )
            await a.session.send_notification(types.ClientNotification(cancel))
        assert answer == ["Request cancelled"]
        await a.call("send", to=solo, body="after the cancel")
        out = await a.wait_for_mail([], timeout=5)
        assert [m["body"] for m in out["mail"]] == ["after the cancel"]


async def test_ask_reply_topics_nak_term_and_dead_letters(mcp_env: dict[str, str]) -> None:
    alice, bob = unique("alice"), unique("bob")
    async with stdio_peer(mcp_env, alice) as a, stdio_peer(mcp_env, bob) as b:
        # ask blocks for the answer; a late answer waits durably for ask(correlation_id)
        pending = await a.call("ask", to=bob, body="status?", timeout=0.5)
        assert pending["pending"] is True
        (question,) = (await b.call("wait_for_mail", timeout=5))["mail"]
        assert question["body"] == "status?" and question["reply_to"]
        await b.call("reply", id=question["id"], body="green")
        answer = await a.call("ask", correlation_id=pending["correlation_id"], timeout=5)
        assert answer["reply"]["body"] == "green" and answer["reply"]["from"] == bob
        assert (await b.call("inbox"))["mail"] == []  # reply acked the question

        # plain mail is answered to its sender, in its thread
        await a.call("send", to=bob, body="review 12?", thread="pr-12")
        (review,) = (await b.call("wait_for_mail", timeout=5))["mail"]
        await b.call("reply", id=review["id"], body="lgtm")
        (back,) = (await a.call("wait_for_mail", timeout=5, thread="pr-12"))["mail"]
        assert back["body"] == "lgtm" and back["from"] == bob
        await a.call("ack", ids=[back["id"]])

        # nak gives it back for later, term sends it to dead letters, requeue brings it back
        await a.call("send", to=bob, body="flaky")
        (m,) = (await b.call("wait_for_mail", timeout=5))["mail"]
        await b.call("ack", ids=[m["id"]], action="nak", delay=0.2)
        (again,) = (await b.call("wait_for_mail", timeout=5))["mail"]
        assert again["id"] == m["id"] and again["deliveries"] == 2
        await b.call("ack", ids=[m["id"]], action="term", reason="cannot parse")
        (dead,) = (await b.call("dead_letters"))["dead_letters"]
        assert dead["id"] == m["id"] and dead["reason"] == "cannot parse"
        assert "not in your mailbox" in await a.error("dead_letters", action="requeue", seq=dead["seq"])
        assert (await b.call("dead_letters", action="requeue", seq=dead["seq"]))["requeued"]["to"] == bob
        (requeued,) = (await b.call("wait_for_mail", timeout=5))["mail"]
        assert requeued["body"] == "flaky"
        await b.call("ack", ids=[requeued["id"]])

        # topics: publish, read the history, read on from next_since
        topic = unique("build")
        await a.call("topic", action="publish", topic=f"{topic}.done", body={"ok": True})
        first = await b.call("topic", action="read", topic=f"{topic}.>")
        assert [(e["topic"], e["body"], e["from"]) for e in first["messages"]] == [
            (f"{topic}.done", {"ok": True}, alice)
        ]
        await a.call("topic", action="publish", topic=f"{topic}.done", body={"ok": False})
        later = await b.call("topic", action="read", topic=f"{topic}.>", since=first["next_since"])
        assert [e["body"] for e in later["messages"]] == [{"ok": False}]
