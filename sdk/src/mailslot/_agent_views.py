"""An agent credential's reads of its own mailbox, asked of the sidecar.

An agent may not read the mail stream by body (``DIRECT.GET`` with ``next_by_subj``,
``STREAM.INFO`` with ``subjects_filter``): a subject permission cannot tell which mailbox the
body names. It asks on ``mview.<address>`` (:mod:`mailslot_broker.protocol.views`), which the
server allows for its own address and reply sub-address only; the sidecar reads that
mailbox and answers in the form of a batched direct get (:func:`mailscan.batch_request`).
Another address's subject is refused by the server (:class:`PermissionDenied`); no sidecar
subscribed is :class:`Unavailable`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mailslot_broker import mailscan
from mailslot_broker import protocol as p
from nats.aio.msg import Msg
from nats.js import errors as jserr

from ._boundary import boundary
from .errors import BrokerFailure, Unavailable
from .link import Link

log = logging.getLogger("mailslot.registry")

v = p.views
#: How long a read waits for the sidecar's first answer.
VIEW_TIMEOUT = 10.0
#: How long a destroy waits for the sidecar's answer: it moves every waiting message to dead
#: letters first (about a millisecond each).
DESTROY_TIMEOUT = 120.0


async def _ask(
    link: Link,
    address: str,
    request: dict[str, Any],
    *,
    limit: int | None = None,
    timeout: float = VIEW_TIMEOUT,
) -> list[Msg]:
    subject = v.view_subject(address)
    got = await mailscan.batch_request(link.nc, subject, request, timeout=timeout, limit=limit)
    if got is None:
        raise Unavailable(
            f"no Mailslot sidecar answers on {subject!r}: an agent credential reads its mailbox "
            "through the sidecar (mailslot_broker.sidecar); is one running for this tenant?"
        )
    return got


async def stored_run(link: Link, address: str, prio: p.Priority, after: int, n: int) -> list[Msg]:
    """Up to ``n`` stored messages at ``prio`` above ``after`` (what :func:`mailscan.next_batch`
    gives a tenant credential), paged by :data:`~mailslot_broker.protocol.views.MAX_SCAN_BATCH`."""
    out: list[Msg] = []
    while len(out) < n:
        want = min(n - len(out), v.MAX_SCAN_BATCH)
        request = {"op": v.OP_SCAN, "priority": int(prio), "after": after, "batch": want}
        run = await _ask(link, address, request)
        out += run
        if len(run) < want:
            break
        after = int((run[-1].headers or {}).get(p.Header.NATS_SEQUENCE, after))
    return out


def _single(got: list[Msg], key: str) -> Any:
    try:
        return json.loads(got[0].data)[key]
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise BrokerFailure(f"the sidecar's mailbox view answer has no {key!r}") from exc


async def counts(link: Link, address: str) -> dict[p.Priority, int]:
    """Waiting messages per priority."""
    got = _single(await _ask(link, address, {"op": v.OP_STATS}, limit=1), "counts")
    return {prio: int(got.get(str(int(prio)), 0)) for prio in p.PRIORITIES}


async def last_seq(link: Link, address: str) -> int:
    return int(_single(await _ask(link, address, {"op": v.OP_LAST}, limit=1), "last"))


async def destroy(link: Link, address: str) -> dict[str, Any]:
    """Have the sidecar destroy ``address`` (the agent's own mailbox: the server refuses
    another's view subject, :class:`PermissionDenied`) as a tenant credential's
    ``Mailbox.destroy()`` would; returns what it did (``dead_lettered``, ``bounces``,
    ``consumers_deleted``)."""
    with boundary():
        got = await _ask(link, address, {"op": v.OP_DESTROY}, limit=1, timeout=DESTROY_TIMEOUT)
    done = _single(got, "destroyed")
    if not isinstance(done, dict):
        raise BrokerFailure("the sidecar's destroy answer is not an object")
    return done


async def supersede(link: Link, to: str, key: str, *, outbox_seq: int, msg_id: str) -> int:
    """Keep-latest for an agent credential's send (stored in its outbox at ``outbox_seq``):
    the sidecar waits for the move, then deletes the older mail with ``key`` that this agent
    sent to ``to`` (never another sender's); returns how many went."""
    assert link.agent is not None
    request = {"op": v.OP_SUPERSEDE, "to": to, "key": key, "outbox_seq": outbox_seq}
    with boundary():
        try:
            got = await _ask(link, link.agent, request, limit=1, timeout=v.SUPERSEDE_MOVE_WAIT + VIEW_TIMEOUT)
        except jserr.APIError as exc:
            if str(exc.code) != v.STATUS_TIMEOUT:
                raise
            raise Unavailable(
                f"message {msg_id} was sent, but older mail with replace_key {key!r} was not "
                f"replaced: {exc.description}"
            ) from exc
        except Unavailable as exc:
            raise Unavailable(
                f"message {msg_id} was sent, but older mail with replace_key {key!r} was not replaced: {exc}"
            ) from exc
    return int(_single(got, "superseded"))


async def registry(link: Link, *, include_offline: bool) -> list[tuple[str, bytes, bool]]:
    """Every card of the registry, ``(address, card JSON, offline)`` in address order, asked
    of the sidecar a page of :data:`~mailslot_broker.protocol.views.MAX_AGENTS_BATCH` at a
    time (an agent credential may not read the agents bucket by body). Asked on the agent's
    own view subject: the registry is the tenant's, the same whoever asks. Pages are read one
    after another, so an agent that joins or leaves meanwhile may show in one page and not in
    another (each card is current when its page was read). A card the sidecar could not
    answer with (too large for ``max_payload`` with its headers: it comes without its body)
    is left out with a warning: one oversized card does not take the listing with it."""
    assert link.agent is not None
    out: list[tuple[str, bytes, bool]] = []
    after = ""
    while True:
        request = {
            "op": v.OP_AGENTS,
            "include_offline": include_offline,
            "after": after,
            "batch": v.MAX_AGENTS_BATCH,
        }
        page = await _ask(link, link.agent, request)
        for m in page:
            headers = m.headers or {}
            address = headers.get(v.AGENT_HEADER)
            if not address:
                raise BrokerFailure("the sidecar's registry answer has a card without its address")
            after = address
            omitted = headers.get(v.BODY_OMITTED)
            if omitted is not None:
                log.warning(
                    "agent %s left out of the listing: its card (%s bytes) is too large for the "
                    "sidecar to answer with",
                    address,
                    omitted,
                )
                continue
            out.append((address, m.data or b"", headers.get(v.AGENT_OFFLINE_HEADER) == "1"))
        if len(page) < v.MAX_AGENTS_BATCH:
            return out


__all__ = [
    "DESTROY_TIMEOUT",
    "VIEW_TIMEOUT",
    "counts",
    "destroy",
    "last_seq",
    "registry",
    "stored_run",
    "supersede",
]
