"""Durable request/reply: ask, request + reply_for, across restarts, without stealing mail."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import mailslot
import pytest
from mailslot_broker import NatsServer
from mailslot_broker import protocol as p
from testsupport import client_env, unique


async def answer(ms: mailslot.Mailslot, address: str, *, n: int = 1, delay: float = 0.0) -> list[str]:
    """A responder: receives ``n`` requests and replies ``echo:<text>``."""
    await asyncio.sleep(delay)
    seen = []
    async with await ms.open(address) as inbox:
        for _ in range(n):
            m = await inbox.receive(timeout=20)
            seen.append(m.text())
            await m.reply(f"echo:{m.text()}")
            await m.ack()
    return seen


async def test_ask_gets_the_matching_reply(shared_ms: mailslot.Mailslot) -> None:
    asker_addr = unique("asker")
    responder_addr = unique("responder")
    asker = await shared_ms.open(asker_addr)
    responder = asyncio.create_task(answer(shared_ms, responder_addr, n=2))
    r1, r2 = await asyncio.gather(
        asker.ask(responder_addr, "one", timeout=20), asker.ask(responder_addr, "two", timeout=20)
    )
    assert {r1.text(), r2.text()} == {"echo:one", "echo:two"}
    assert r1.sender == responder_addr and r1.correlation_id != r2.correlation_id
    assert sorted(await responder) == ["one", "two"]
    await r1.ack()  # a no-op: the reply left the mailbox when it was handed out
    with pytest.raises(mailslot.MessageError):
        await r2.nak()
    info = await shared_ms.js.stream_info(p.MAIL_STREAM, subjects_filter=f"mbox.*.{asker_addr}.>")
    assert not info.state.subjects


async def test_ask_timeout_then_reply_for(shared_ms: mailslot.Mailslot) -> None:
    asker_addr = unique("asker")
    nobody_home_addr = unique("nobody-home")
    slow_addr = unique("slow")
    asker = await shared_ms.open(asker_addr)
    with pytest.raises(mailslot.Timeout):
        await asker.ask(nobody_home_addr, "ping", timeout=0.5)
    receipt = await asker.request(slow_addr, "late question")
    with pytest.raises(mailslot.Timeout):
        await asker.reply_for(receipt.correlation_id, timeout=0.3)
    await answer(shared_ms, slow_addr)
    reply = await asker.reply_for(receipt.correlation_id, timeout=10)
    assert reply.text() == "echo:late question" and reply.correlation_id == receipt.id


async def test_responder_offline_at_first(shared_ms: mailslot.Mailslot) -> None:
    asker_addr = unique("asker")
    sleeper_addr = unique("sleeper")
    asker = await shared_ms.open(asker_addr)
    responder = asyncio.create_task(answer(shared_ms, sleeper_addr, delay=1.0))
    reply = await asker.ask(sleeper_addr, "wake up", timeout=20, priority="urgent")
    assert reply.text() == "echo:wake up" and reply.priority is mailslot.Priority.URGENT
    await responder


async def test_ask_does_not_steal_mail_and_receive_gets_no_replies(shared_ms: mailslot.Mailslot) -> None:
    asker_addr = unique("asker")
    other_addr = unique("other")
    responder_addr = unique("responder")
    asker = await shared_ms.open(asker_addr)
    other = await shared_ms.open(other_addr)

    async def responder() -> None:
        async with await shared_ms.open(responder_addr) as inbox:
            m = await inbox.receive(timeout=20)
            await other.send(asker_addr, "plain mail while the ask waits")
            await asyncio.sleep(0.3)
            await m.reply("the answer")
            await m.ack()

    task = asyncio.create_task(responder())
    reply = await asker.ask(responder_addr, "question", timeout=20)
    await task
    assert reply.text() == "the answer"
    mail = await asker.receive(timeout=5)
    assert mail.text() == "plain mail while the ask waits" and mail.reply_to is None
    await mail.ack()
    with pytest.raises(mailslot.Timeout):
        await asker.receive(timeout=0.5)
    assert [m.text() for m in await asker.peek()] == []


async def test_receive_never_sees_a_reply_nobody_collected(shared_ms: mailslot.Mailslot) -> None:
    asker_addr = unique("asker")
    responder_addr = unique("responder")
    asker = await shared_ms.open(asker_addr)
    receipt = await asker.request(responder_addr, "q", thread_id="t-1")
    await answer(shared_ms, responder_addr)
    with pytest.raises(mailslot.Timeout):
        await asker.receive(timeout=0.5)
    reply = await asker.reply_for(receipt.correlation_id, timeout=5)
    assert reply.thread_id == "t-1"


async def test_idempotent_ask_reuses_the_request(shared_ms: mailslot.Mailslot) -> None:
    asker_addr = unique("asker")
    responder_addr = unique("responder")
    asker = await shared_ms.open(asker_addr)
    first = await asker.request(responder_addr, "q", idempotency_key="job-9")
    responder = asyncio.create_task(answer(shared_ms, responder_addr))
    reply = await asker.ask(responder_addr, "q", idempotency_key="job-9", timeout=20)
    assert reply.correlation_id == first.id
    assert await responder == ["q"]  # the retried ask did not send a second request
    stats = await shared_ms.inspect(responder_addr).stats()
    assert stats.total == 0


async def test_reply_to_a_foreign_reply_to_goes_to_that_mailbox(shared_ms: mailslot.Mailslot) -> None:
    responder_addr = unique("responder")
    elsewhere_addr = unique("elsewhere")
    await shared_ms.send(
        responder_addr, "from a foreign client", reply_to=elsewhere_addr, correlation_id="c-1"
    )
    await answer(shared_ms, responder_addr)
    [waiting] = await shared_ms.inspect(elsewhere_addr).peek()
    assert waiting.text() == "echo:from a foreign client" and waiting.correlation_id == "c-1"


async def test_destroy_reclaims_replies_and_reply_address_cannot_be_opened(
    shared_ms: mailslot.Mailslot,
) -> None:
    asker_addr = unique("asker")
    responder_addr = unique("responder")
    asker = await shared_ms.open(asker_addr)
    await asker.request(responder_addr, "q")
    await answer(shared_ms, responder_addr)
    subj = p.mail_subject_all_priorities(p.reply_address(asker_addr))
    assert (await shared_ms.js.stream_info(p.MAIL_STREAM, subjects_filter=subj)).state.subjects
    await asker.destroy()
    assert not (await shared_ms.js.stream_info(p.MAIL_STREAM, subjects_filter=subj)).state.subjects
    with pytest.raises(mailslot.InvalidInput):
        await shared_ms.open(f"{asker_addr}._replies")


_ASK_AND_EXIT = textwrap.dedent(
    """
    import asyncio, sys, mailslot
    async def main():
        async with mailslot.connect() as ms:
            inbox = await ms.open(sys.argv[1], ttl=60)
            r = await inbox.request(sys.argv[2], "survive a restart")
            print(r.correlation_id, flush=True)
    asyncio.run(main())
    """
)

_COLLECT = textwrap.dedent(
    """
    import asyncio, sys, mailslot
    async def main():
        async with mailslot.connect() as ms:
            inbox = await ms.open(sys.argv[1], ttl=60)
            assert inbox.resumed
            reply = await inbox.reply_for(sys.argv[2], timeout=20)
            print(reply.text(), flush=True)
    asyncio.run(main())
    """
)


async def test_reply_for_after_the_asker_process_restarted(
    shared_ms: mailslot.Mailslot, shared_server: NatsServer
) -> None:
    restarting_asker_addr = unique("restarting-asker")
    responder_addr = unique("responder")
    env = client_env(shared_server)

    def run(code: str, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", code, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    corr = await asyncio.to_thread(run, _ASK_AND_EXIT, restarting_asker_addr, responder_addr)
    await answer(shared_ms, responder_addr)  # the asker process is gone; the reply waits for it
    assert await asyncio.to_thread(run, _COLLECT, restarting_asker_addr, corr) == "echo:survive a restart"


def test_sync_twin_ask_request_reply_for(shared_server: NatsServer) -> None:
    import threading

    from mailslot import sync

    asker_addr = unique("sync-asker")
    responder_addr = unique("sync-responder")
    c = shared_server.credentials
    with sync.connect(shared_server.url, user=c.user, password=c.password) as ms:
        asker = ms.open(asker_addr)
        responder = ms.open(responder_addr)

        def serve(n: int) -> None:
            for _ in range(n):
                m = responder.receive(timeout=20)
                m.reply({"answer": m.json()["q"] * 2})
                m.ack()

        t = threading.Thread(target=serve, args=(2,))
        t.start()
        reply = asker.ask(responder_addr, {"q": 21}, timeout=20)
        assert reply.json() == {"answer": 42}
        receipt = asker.request(responder_addr, {"q": 1})
        assert asker.reply_for(receipt.correlation_id, timeout=20).json() == {"answer": 2}
        t.join(20)


async def test_two_replicas_waiting_for_one_reply_hand_it_out_once(
    shared_ms: mailslot.Mailslot, shared_server: NatsServer
) -> None:
    replicated_addr = unique("replicated")
    responder_addr = unique("responder")
    c = shared_server.credentials
    async with mailslot.connect(shared_server.url, user=c.user, password=c.password) as other:
        a = await shared_ms.open(replicated_addr)
        b = await other.open(replicated_addr)
        receipt = await a.request(responder_addr, "q")
        waits = [asyncio.create_task(x.reply_for(receipt.correlation_id, timeout=4)) for x in (a, b)]
        await asyncio.sleep(0.2)  # both are waiting on the bell
        await answer(shared_ms, responder_addr)
        results = await asyncio.gather(*waits, return_exceptions=True)
        got = [r for r in results if isinstance(r, mailslot.Message)]
        missed = [r for r in results if isinstance(r, mailslot.Timeout)]
        assert len(got) == 1 and len(missed) == 1, results
        assert got[0].text() == "echo:q"


async def test_reply_for_keep_until_ack(shared_ms: mailslot.Mailslot) -> None:
    """keep=True leaves the reply stored until ack: a consumer that crashed before finishing
    collects the same reply again."""
    keeper_addr = unique("keeper")
    answerer_addr = unique("answerer")
    asker = await shared_ms.open(keeper_addr)
    responder = await shared_ms.open(answerer_addr)
    receipt = await asker.request(answerer_addr, {"q": 1})
    req = await responder.receive(timeout=5)
    await req.reply({"a": 2})
    await req.ack()
    first = await asker.reply_for(receipt.correlation_id, timeout=5, keep=True)
    again = await asker.reply_for(receipt.correlation_id, timeout=5, keep=True)
    assert first.json() == again.json() == {"a": 2} and first.seq == again.seq
    await again.ack()
    with pytest.raises(mailslot.Timeout):
        await asker.reply_for(receipt.correlation_id, timeout=0.5)
