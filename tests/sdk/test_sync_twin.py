import asyncio
import inspect
import threading

import mailslot
import pytest
from mailslot import sync
from mailslot.deadletters import DeadLetters
from mailslot.mailbox import Mailbox
from mailslot.message import Message
from mailslot.view import MailboxView
from testsupport import unique


def _public_methods(cls):
    return {name: fn for name, fn in inspect.getmembers(cls, inspect.isfunction) if not name.startswith("_")}


@pytest.mark.parametrize(
    ("async_cls", "sync_cls"),
    [
        (mailslot.Mailslot, sync.SyncMailslot),
        (Mailbox, sync.SyncMailbox),
        (MailboxView, sync.SyncMailboxView),
        (Message, sync.SyncMessage),
        (mailslot.Reply, sync.SyncReply),
        (mailslot.TopicSubscription, sync.SyncTopicSubscription),
        (mailslot.AgentWatch, sync.SyncAgentWatch),
        (DeadLetters, sync.SyncDeadLetters),
        (mailslot.Claims, sync.SyncClaims),
        (mailslot.StateStore, sync.SyncStateStore),
        (mailslot.StateWatch, sync.SyncStateWatch),
    ],
)
def test_twins_have_the_same_names_and_signatures(async_cls, sync_cls):
    a, s = _public_methods(async_cls), _public_methods(sync_cls)
    missing = set(a) - set(s)
    assert not missing, f"{sync_cls.__name__} lacks {sorted(missing)}"
    for name, fn in a.items():
        sa, ss = inspect.signature(fn), inspect.signature(s[name])
        assert list(sa.parameters) == list(ss.parameters), name
        for pname, param in sa.parameters.items():
            other = ss.parameters[pname]
            assert param.kind == other.kind, (name, pname)
            assert param.default == other.default, (name, pname)


def test_connect_signatures_match():
    assert (
        inspect.signature(mailslot.connect).parameters.keys()
        == inspect.signature(sync.connect).parameters.keys()
    )


def test_sync_round_trip(shared_server):
    box = unique("sync-box")
    c = shared_server.credentials
    with sync.connect(shared_server.url, user=c.user, password=c.password, name="script") as ms:
        r = ms.send(box, {"n": 1}, priority="urgent")
        ms.send(box, "low one", priority="low")
        with ms.open(box) as mb:
            m = mb.receive(timeout=5)
            assert m.id == r.id and m.json() == {"n": 1} and m.sender == "script"
            m.ack()
            assert [x.text() for x in ms.inspect(box).peek()] == ["low one"]
            batch = mb.receive_batch(max=5, timeout=5)
            assert [x.text() for x in batch] == ["low one"]
            batch[0].ack()
            with pytest.raises(mailslot.Timeout):
                mb.receive(timeout=0.3)


def test_sync_twin_refuses_its_own_loop_thread(shared_server):
    from mailslot._portal import PORTAL

    c = shared_server.credentials
    ms = sync.connect(shared_server.url, user=c.user, password=c.password)
    errors = []

    def inside():
        try:
            ms.send("x", "y")
        except mailslot.MailslotError as exc:
            errors.append(exc)

    loop = PORTAL.loop()
    done = threading.Event()
    loop.call_soon_threadsafe(lambda: (inside(), done.set()))
    done.wait(5)
    assert errors and "event-loop thread" in str(errors[0])
    ms.close()


def test_sync_twin_refuses_to_block_a_running_event_loop(shared_server):
    """Called from a coroutine, a sync method raises BlockingCall at once (it used to stop the
    caller's loop until it returned, silently); nothing was sent. From a worker thread of the
    same loop it works."""
    c = shared_server.credentials
    to = unique("blocked")
    ms = sync.connect(shared_server.url, user=c.user, password=c.password)
    try:

        async def inside() -> None:
            with pytest.raises(mailslot.BlockingCall, match=r"send.*asyncio.to_thread"):
                ms.send(to, "y")
            await asyncio.to_thread(ms.send, to, "sent from a worker thread")

        asyncio.run(inside())
        assert [m.text() for m in ms.inspect(to).peek(limit=10)] == ["sent from a worker thread"]
    finally:
        ms.close()


def test_sync_request_ask_and_reply_for_hand_out_sync_replies(shared_server):
    asker_addr, responder_addr = unique("sync-asker"), unique("sync-responder")
    c = shared_server.credentials
    with (
        sync.connect(shared_server.url, user=c.user, password=c.password) as ms,
        ms.open(asker_addr) as asker,
        ms.open(responder_addr) as responder,
    ):

        def answer():
            m = responder.receive(timeout=10)
            m.reply(f"re: {m.text()}")
            m.ack()

        sent = asker.request(responder_addr, "q1")
        answer()
        kept = asker.reply_for(sent.id, timeout=5, keep=True)
        assert isinstance(kept, sync.SyncReply) and isinstance(kept.aio, mailslot.Reply)
        assert (kept.text(), kept.correlation_id) == ("re: q1", sent.id)
        with pytest.raises(mailslot.MessageError):
            kept.nak()
        with pytest.raises(mailslot.MessageError):
            kept.term()
        kept.ack()  # a kept reply is deleted by its ack
        with pytest.raises(mailslot.Timeout):
            asker.reply_for(sent.id, timeout=0.5)

        helper = threading.Thread(target=answer)
        helper.start()
        got = asker.ask(responder_addr, "q2", timeout=10)
        helper.join(10)
        assert isinstance(got, sync.SyncReply) and got.text() == "re: q2"
