"""Answering agent credentials' reads of their own mailbox, its destroy and registry
listings (:mod:`..protocol.views`).

An agent may not read the mail stream by body (a subject permission cannot tell which
mailbox the body names), so it asks on ``mview.<address>``, which the server lets it publish
for its own address only; this responder reads the mailbox the subject names with the
sidecar's tenant credential and the same scan code the SDK uses
(:func:`..mailscan.next_batch`). Every replica serves (queue group), leader or not: a read
changes nothing. Nothing is consumed: direct gets and stream info only. The one request
that changes something, ``destroy``, is the tenant-side destroy (reclaim, idempotent and safe
to run on any replica at once with the reaper), for the mailbox the subject names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as jserr

from .. import mailscan, natscompat, tenant_reads
from .. import protocol as p
from ..errors import ProtocolViolation
from ..protocol import principals
from ..reclaim import reclaim_mailbox
from ..tasks import cancel_and_wait
from ..tenant_reads import registry_cards  # re-exported: the listing the op answers

log = logging.getLogger("mailslot.sidecar.views")

v = p.views
#: Requests served at once per replica (more wait their turn).
CONCURRENCY = 16
#: Requests waiting in the subscription beyond those being served (the client drops more).
PENDING_LIMIT = 1024
#: Keep-latest requests (op ``supersede``) served at once per replica, on slots of their own:
#: each may wait up to SUPERSEDE_MOVE_WAIT for the mover, and must not hold the slots of
#: scans, stats and destroys meanwhile.
SUPERSEDE_CONCURRENCY = 16
#: Keep-latest requests running or waiting for a slot; one more is answered at once with
#: ``Status: 504`` (nothing replaced) rather than queued behind them.
SUPERSEDE_QUEUE = 64


class BadRequest(ProtocolViolation):
    """A view request the sidecar cannot serve: answered with a 400, never retried."""


def fitted(
    headers: dict[str, str], data: bytes, max_payload: int, *, subject: str = ""
) -> tuple[dict[str, str], bytes]:
    """``headers`` and ``data`` of an answer published to ``subject``, the body left out (its
    size in :data:`~..protocol.views.BODY_OMITTED`) when subject, headers and body together
    would exceed ``max_payload``: a publish over it costs the sidecar its connection."""
    if len(subject) + v.message_size(headers, data) > max_payload:
        return {**headers, v.BODY_OMITTED: str(len(data))}, b""
    return headers, data


def relayed(msg: Msg, max_payload: int) -> tuple[dict[str, str], bytes]:
    """Headers and body of the reply that relays stored ``msg``: the body dropped (and its
    size in :data:`~..protocol.views.BODY_OMITTED`) when the reply would not fit."""
    hdrs = msg.headers or {}
    out = {k: val for k, val in hdrs.items() if not k.startswith("Nats-") or k in v.RELAYED_NATS_HEADERS}
    return fitted(out, msg.data or b"", max_payload)


def _op(data: bytes | None) -> Any:
    """The ``op`` of a request body, None when it has none (answered later with a 400)."""
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        return None
    return body.get("op") if isinstance(body, dict) else None


def _int(body: dict[str, Any], key: str, lo: int, hi: int, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadRequest(f"{key} must be an integer in {lo}..{hi}")
    return value


async def supersede_own(
    js: JetStreamContext, to: str, key: str, *, sender: str, before: int, timeout: float = 5.0
) -> int:
    """Delete the waiting mail of ``to`` with keep-latest ``key`` that ``sender`` sent through
    its outbox before outbox sequence ``before`` (the mover's ``Mailslot-Outbox-Seq``);
    returns how many went. Mail of any other sender, and mail stored without passing the
    outbox, stays. The scan and delete are the tenant's keep-latest
    (:func:`~..tenant_reads.delete_keyed`)."""

    def older(headers: Mapping[str, str], _seq: int) -> bool:
        if headers.get(p.Header.FROM) != sender:
            return False
        try:
            moved_from = int(headers.get(v.OUTBOX_SEQ_HEADER, ""))
        except ValueError:
            return False  # not moved from the outbox
        return moved_from < before

    return await tenant_reads.delete_keyed(js, to, key, older=older, timeout=timeout)


class MailboxViews:
    """The responder: subscribe with :meth:`start`, unsubscribe with :meth:`stop`."""

    def __init__(self, js: JetStreamContext, *, timeout: float = 5.0) -> None:
        self.js = js
        self.nc = natscompat.js_connection(js)
        self.timeout = timeout
        self.served = 0
        self.refused = 0  # requests whose reply subject was not the requester's own inbox
        self.destroyed = 0  # mailboxes destroyed at their agent's request
        self.superseded = 0  # messages replaced by a keep-latest send of their agent
        self._sub: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._supersede_slots = asyncio.Semaphore(SUPERSEDE_CONCURRENCY)
        self._supersedes: set[asyncio.Task[None]] = set()
        self.busy = 0  # keep-latest requests turned away: SUPERSEDE_QUEUE were in hand

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(
            v.view_subject_all(),
            queue=v.VIEW_QUEUE,
            cb=self._on_request,
            pending_msgs_limit=PENDING_LIMIT,
        )

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        await cancel_and_wait(list(self._tasks))

    async def _on_request(self, msg: Msg) -> None:
        if not principals.answers_own_inbox(msg.subject, msg.reply or ""):
            # Not the requesting agent's own inbox: answering would publish where the
            # requester chose, with the tenant's rights. Dropped, unanswered.
            self.refused += 1
            log.debug("mailbox view %s: reply subject %r refused", msg.subject, msg.reply)
            return
        if _op(msg.data) == v.OP_SUPERSEDE:
            # Never waits here: a keep-latest may wait seconds for the mover, and this
            # callback holding the subscription would stall every other agent's view.
            if len(self._supersedes) >= SUPERSEDE_QUEUE:
                self.busy += 1
                await self._status(
                    msg.reply, v.STATUS_TIMEOUT, "too many keep-latest sends in hand; nothing was replaced"
                )
                return
            task = asyncio.create_task(self._serve_supersede(msg))
            self._supersedes.add(task)
            self._tasks.add(task)
            task.add_done_callback(self._supersede_done)
            return
        # A slot before a task: while all are busy this callback waits, so requests queue in
        # the subscription (bounded by PENDING_LIMIT, beyond it the client drops them), not
        # as ever more tasks.
        await self._slots.acquire()
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    def _supersede_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._supersedes.discard(task)

    async def _serve_supersede(self, msg: Msg) -> None:
        async with self._supersede_slots:
            await self._serve(msg)

    async def _serve(self, msg: Msg) -> None:
        try:
            await self.answer(msg)
            self.served += 1
        except asyncio.CancelledError:
            raise
        except BadRequest as exc:
            await self._status(msg.reply, v.STATUS_BAD_REQUEST, str(exc))
        except Exception as exc:
            log.warning("mailbox view %s failed: %r", msg.subject, exc)
            await self._status(msg.reply, v.STATUS_FAILED, f"mailslot sidecar: {exc}")

    async def _status(self, reply: str, code: str, description: str) -> None:
        with contextlib.suppress(Exception):
            headers = {v.STATUS_HEADER: code, v.DESCRIPTION_HEADER: description[:200]}
            await self._publish(reply, b"", headers)

    async def _publish(self, reply: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Publish one answer (every answer goes through here): its body left out, with
        :data:`~..protocol.views.BODY_OMITTED`, when it would not fit ``max_payload``
        (:func:`fitted`). What does not fit even so (headers alone too large) is never
        published: it raises, and the request is answered with a 500."""
        max_payload = int(self.nc.max_payload)
        out, body = fitted(dict(headers or {}), data, max_payload, subject=reply)
        if len(reply) + v.message_size(out, body) > max_payload:
            raise ProtocolViolation(f"a view answer's headers alone exceed max_payload {max_payload}")
        if v.BODY_OMITTED in out and v.BODY_OMITTED not in (headers or {}):
            log.warning(
                "mailbox view answer to %s: %s bytes left out (over max_payload %d)",
                reply,
                out[v.BODY_OMITTED],
                max_payload,
            )
        await self.nc.publish(reply, body, headers=out or None)

    async def answer(self, msg: Msg) -> None:
        address = v.view_address(msg.subject)
        try:
            address = p.validate_address(address)
            body = json.loads(msg.data or b"{}")
        except Exception as exc:
            raise BadRequest(f"not a mailbox view request: {exc}") from exc
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        op = body.get("op")
        if op == v.OP_SCAN:
            await self._scan(msg.reply, address, body)
        elif op == v.OP_STATS:
            counts = await self.counts(address)
            await self._publish(msg.reply, json.dumps({"counts": counts}).encode())
        elif op == v.OP_LAST:
            await self._publish(msg.reply, json.dumps({"last": await self.last(address)}).encode())
        elif op == v.OP_DESTROY:
            await self._destroy(msg.reply, address)
        elif op == v.OP_AGENTS:
            await self._agents(msg.reply, body)
        elif op == v.OP_SUPERSEDE:
            await self._supersede(msg.reply, address, body)
        else:
            raise BadRequest(f"unknown op {op!r}")

    async def _scan(self, reply: str, address: str, body: dict[str, Any]) -> None:
        prio = p.Priority(_int(body, "priority", 0, 3, 0))
        after = _int(body, "after", 0, 2**63 - 2, 0)
        batch = _int(body, "batch", 1, 2**31, v.MAX_SCAN_BATCH)
        got = await mailscan.next_batch(
            self.js,
            p.MAIL_STREAM,
            p.mail_subject(prio, address),
            after + 1,
            min(batch, v.MAX_SCAN_BATCH),
            timeout=self.timeout,
        )
        max_payload = int(self.nc.max_payload)
        for m in got:
            headers, data = relayed(m, max_payload)
            await self._publish(reply, data, headers)
        await self._publish(reply, b"", {v.STATUS_HEADER: v.STATUS_END})

    async def _destroy(self, reply: str, address: str) -> None:
        """What ``Mailbox.destroy()`` does on a tenant credential, for the agent's own mailbox
        (the subject's address, which the server lets only that agent, or the tenant,
        publish): the same :func:`~..reclaim.reclaim_mailbox`."""
        if p.is_reply_address(address):
            raise BadRequest("a reply sub-address is destroyed with its mailbox, not on its own")
        report = await reclaim_mailbox(self.js, address)
        self.destroyed += 1
        log.info(
            "destroyed %s at its agent's request (%d messages to dead letters)",
            address,
            report.messages_dead_lettered,
        )
        answer = {
            "destroyed": {
                "dead_lettered": report.messages_dead_lettered,
                "bounces": report.bounces,
                "consumers_deleted": report.consumers_deleted,
            }
        }
        await self._publish(reply, json.dumps(answer).encode())

    async def _agents(self, reply: str, body: dict[str, Any]) -> None:
        """One page of the registry: cards are public inside a tenant, so whoever may ask
        (any agent, on its own view subject) gets the same list a tenant's ``agents()``
        reads."""
        after = body.get("after", "")
        if not isinstance(after, str):
            raise BadRequest("after must be an address (a string)")
        include_offline = body.get("include_offline", False)
        if not isinstance(include_offline, bool):
            raise BadRequest("include_offline must be true or false")
        batch = min(_int(body, "batch", 1, 2**31, v.MAX_AGENTS_BATCH), v.MAX_AGENTS_BATCH)
        cards = await tenant_reads.registry_cards(self.js, include_offline=include_offline)
        page = [c for c in cards if c[0] > after][:batch]
        for address, card, offline in page:
            headers = {v.AGENT_HEADER: address}
            if offline:
                headers[v.AGENT_OFFLINE_HEADER] = "1"
            await self._publish(reply, card, headers)  # a card too large comes without its body
        await self._publish(reply, b"", {v.STATUS_HEADER: v.STATUS_END})

    async def _supersede(self, reply: str, address: str, body: dict[str, Any]) -> None:
        """Keep-latest for an agent's send: once the new message has moved out of the
        outbox, delete the older mail with its key that this agent sent to ``to`` through its
        outbox (:mod:`..protocol.views`, op ``supersede``)."""
        try:
            to = p.validate_address(body.get("to"))
            key = p.validate_replace_key(body.get("key"))
        except Exception as exc:
            raise BadRequest(f"not a supersede request: {exc}") from exc
        newer = _int(body, "outbox_seq", 1, 2**63 - 2, 0)
        sender = address[: -len(p.REPLY_TOKEN) - 1] if p.is_reply_address(address) else address
        if not await self._moved_through(newer):
            await self._status(
                reply,
                v.STATUS_TIMEOUT,
                f"outbox message {newer} not moved within {v.SUPERSEDE_MOVE_WAIT:g} s "
                "(is the sidecar's leader running?); nothing was replaced",
            )
            return
        gone = await supersede_own(self.js, to, key, sender=sender, before=newer, timeout=self.timeout)
        self.superseded += gone
        await self._publish(reply, json.dumps({"superseded": gone}).encode())

    async def _moved_through(self, seq: int) -> bool:
        """Whether the outbox no longer holds message ``seq`` (a WorkQueue: what the mover
        acked is gone), waiting up to :data:`~..protocol.views.SUPERSEDE_MOVE_WAIT`. That one
        message only: another the mover keeps retrying holds up no one else's keep-latest."""
        deadline = time.monotonic() + v.SUPERSEDE_MOVE_WAIT
        pause = 0.005
        while True:
            try:
                await self.js.get_msg(p.agent_writes.OUTBOX_STREAM, seq=seq)
            except jserr.NotFoundError:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.2)

    async def counts(self, address: str) -> dict[str, int]:
        info = await self.js.stream_info(
            p.MAIL_STREAM, subjects_filter=p.mail_subject_all_priorities(address)
        )
        subjects = info.state.subjects or {}
        return {str(int(prio)): int(subjects.get(p.mail_subject(prio, address), 0)) for prio in p.PRIORITIES}

    async def last(self, address: str) -> int:
        return await mailscan.last_seq(self.js, address)


__all__ = [
    "CONCURRENCY",
    "SUPERSEDE_CONCURRENCY",
    "SUPERSEDE_QUEUE",
    "MailboxViews",
    "fitted",
    "registry_cards",
    "relayed",
    "supersede_own",
]
