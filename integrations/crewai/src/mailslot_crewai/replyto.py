"""One reply mailbox, one flow store: flows that keep their state in different stores cannot
share a ``reply_to``.

A resumer takes every reply in its mailbox and terminates one whose flow its store does not
know (a duplicate, a flow resumed already). Two applications with different stores (two
``MailslotFlowPersistence`` namespaces, two SQLite files) on one reply mailbox would so take
and terminate each other's answers. So the reply mailbox is bound to the store of the first
that uses it, in the broker's state store (namespace ``crewai-replies``, key
``("reply-to", <address>)``): :class:`MailboxFeedback` binds it before it mails a question
and refuses to pause a flow of another store (``kickoff()`` raises :class:`ReplyToInUse`,
nothing is mailed), and a resumer binds it before it receives, refusing to start for another
store, so it never takes their replies. :func:`unbind_reply_to` lets an application move a
reply mailbox to a new store once the old one is done with it.

A store is named by :func:`store_id`: ``mailslot:<namespace>`` (its tenant is the
connection's), ``sqlite:<absolute path>``, else the persistence's class.
"""

from __future__ import annotations

import json
import os

import mailslot
from crewai.flow.persistence.base import FlowPersistence
from mailslot.sync import SyncMailbox, SyncMailslot

from .persistence import MailslotFlowPersistence

#: State-store namespace of the reply-mailbox bindings.
BINDINGS = "crewai-replies"


class ReplyToInUse(mailslot.MailslotError):
    """The reply mailbox serves flows of another store: sharing it would lose their replies."""


def store_id(persistence: FlowPersistence | None) -> str:
    """The name of the store a flow's state is kept in (see the module docstring)."""
    if persistence is None or isinstance(persistence, MailslotFlowPersistence):
        return f"mailslot:{getattr(persistence, 'namespace', None) or 'crewai'}"
    path = getattr(persistence, "db_path", None)
    if isinstance(path, str | os.PathLike):
        return f"sqlite:{os.path.abspath(path)}"
    cls = type(persistence)
    return f"{cls.__module__}.{cls.__qualname__}"


def _key(address: str) -> tuple[str, str]:
    return ("reply-to", address)


def _verdict(address: str, mine: str, stored: bytes | None) -> bool:
    """True if the binding is ``mine``, False if there is none; raises if it is another's."""
    if stored is None:
        return False
    theirs = json.loads(stored).get("store")
    if theirs != mine:
        raise ReplyToInUse(
            f"reply mailbox {address!r} serves flows kept in {theirs}, not {mine}: give these "
            "flows a reply_to of their own (or unbind_reply_to() once the other store is done)"
        )
    return True


def _sync_client(client: SyncMailslot | SyncMailbox) -> SyncMailslot:
    return SyncMailslot(client.aio.client) if isinstance(client, SyncMailbox) else client


def bind_reply_to(client: SyncMailslot | SyncMailbox, address: str, store: str) -> None:
    """Bind ``address`` to ``store``, or raise :class:`ReplyToInUse` if it is bound to another."""
    bindings = _sync_client(client).state(BINDINGS)
    entry = bindings.get(_key(address))
    if _verdict(address, store, entry.value if entry else None):
        return
    try:
        bindings.put(_key(address), json.dumps({"store": store}).encode(), expect_revision=0)
    except mailslot.StateConflict:  # bound meanwhile: by whom?
        entry = bindings.get(_key(address))
        _verdict(address, store, entry.value if entry else None)


async def abind_reply_to(client: mailslot.Mailslot, address: str, store: str) -> None:
    """Async :func:`bind_reply_to`."""
    bindings = client.state(BINDINGS)
    entry = await bindings.get(_key(address))
    if _verdict(address, store, entry.value if entry else None):
        return
    try:
        await bindings.put(_key(address), json.dumps({"store": store}).encode(), expect_revision=0)
    except mailslot.StateConflict:
        entry = await bindings.get(_key(address))
        _verdict(address, store, entry.value if entry else None)


def unbind_reply_to(client: SyncMailslot | SyncMailbox, address: str) -> None:
    """Forget which store ``address`` serves (its next user binds it anew)."""
    _sync_client(client).state(BINDINGS).delete(_key(address))


__all__ = ["BINDINGS", "ReplyToInUse", "abind_reply_to", "bind_reply_to", "store_id", "unbind_reply_to"]
