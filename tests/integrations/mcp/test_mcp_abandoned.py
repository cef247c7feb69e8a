"""Abandoned waits: mcp 1.30 clients send no cancel, so a wait_for_mail whose client left
must give back the mail it took (nak, no delay) instead of holding it for the ack wait
(--ack-wait, 600 s by default)."""

from __future__ import annotations

import functools
import time

import anyio
import mailslot
from conftest import HttpServer, Peer, http_peer, stdio_peer
from testsupport import unique


async def _abandon_a_wait(peer: Peer, then: object = None, **args: object) -> None:
    """Start a wait on ``peer``, then stop waiting on the client side (no cancel is sent)."""
    started = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(peer.wait_for_mail, [], started, timeout=20, **args))
        with anyio.fail_after(10):
            await started.wait()
        if callable(then):
            await then()
        tg.cancel_scope.cancel()


async def test_a_stdio_client_that_left_gives_back_what_it_held(
    mcp_env: dict[str, str], shared_ms: mailslot.Mailslot
) -> None:
    bob = unique("bob")
    async with stdio_peer(mcp_env, bob) as b:
        shown = await shared_ms.send(bob, "shown, never acked", priority="urgent")
        got = await b.call("wait_for_mail", timeout=5)
        assert [m["id"] for m in got["mail"]] == [shown.id]

        async def mail_it_takes_but_does_not_show() -> None:
            await shared_ms.send(bob, "taken, not shown", priority="low")
            await anyio.sleep(0.5)  # received into the server's hands; below the wait's filter

        await _abandon_a_wait(b, mail_it_takes_but_does_not_show, min_priority="critical")
    # The host is gone (stdin closed, the server stopped): the mail is back at once.
    t0 = time.perf_counter()
    async with await shared_ms.open(bob) as mb:
        again = [await mb.receive(timeout=10) for _ in range(2)]
        back_s = time.perf_counter() - t0
        assert sorted(m.text() for m in again) == ["shown, never acked", "taken, not shown"]
        assert {m.delivery_count for m in again} == {2}
        await mb.ack_many(again)
    print(f"\nstdio: mail held by a server whose client left redelivered {back_s * 1000:.0f} ms later")
    assert back_s < 5  # the ack wait is 600 s


async def test_an_http_wait_whose_request_dropped_gives_the_mail_back(
    http_server: HttpServer, shared_ms: mailslot.Mailslot
) -> None:
    bob = next(a for a in http_server.tokens if a.startswith("bob"))
    token = http_server.tokens[bob]
    async with http_peer(http_server.url, token, terminate_on_close=False) as gone:
        await _abandon_a_wait(gone)  # the POST is dropped; the session is never ended
    await shared_ms.send(bob, "for the next session")
    await anyio.sleep(1.0)  # the abandoned wait (still running at the server) takes it first
    async with http_peer(http_server.url, token) as b:
        got = await b.call("wait_for_mail", timeout=5)
        assert [(m["body"], m.get("deliveries")) for m in got["mail"]] == [("for the next session", 2)]
        await b.call("ack", ids=[got["mail"][0]["id"]])


async def test_an_http_session_ended_mid_wait_gives_back_what_it_took(
    http_server: HttpServer, shared_ms: mailslot.Mailslot
) -> None:
    bob = next(a for a in http_server.tokens if a.startswith("bob"))
    token = http_server.tokens[bob]
    async with http_peer(http_server.url, token) as leaving:

        async def mail_it_takes_but_does_not_show() -> None:
            await shared_ms.send(bob, "below the filter", priority="low")
            await anyio.sleep(0.5)

        await _abandon_a_wait(leaving, mail_it_takes_but_does_not_show, min_priority="critical")
    # The DELETE ended the session: the server cancelled the wait, which gave the mail back
    # to the broker (delivered again), instead of keeping it for whichever wait comes next.
    async with http_peer(http_server.url, token) as b:
        got = await b.call("wait_for_mail", timeout=5)
        assert [(m["body"], m.get("deliveries")) for m in got["mail"]] == [("below the filter", 2)]
        await b.call("ack", ids=[got["mail"][0]["id"]])
