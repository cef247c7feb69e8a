"""Signed senders: an agent credential signs the mail it sends, receivers check the sender.

``Mailslot-From`` is a header: NATS permissions cannot bind it to the credential that
published. An agent credential carries an ed25519 nkey seed; every mail message it publishes
gets ``Mailslot-Signature`` over id, sender, recipient, send time and the body's SHA-256
(:func:`mailslot_broker.protocol.principals.signed_text`). A receiver looks the sender's
public key up in the tenant's key bucket (``$KV.MAILSLOT_KEYS.<sender>``, written by whoever
issued the credential) and sets :attr:`Message.sender_verified` only when the signature holds.
Mail from a tenant credential, a plain NATS client or a forger reads unverified; a mailbox
opened with ``require_verified=True`` dead-letters it with the reason.

Signing happens where every path that stores mail (send, send_many, request, reply, delayed)
publishes: :mod:`mailslot.sending` seals each prepared message once (:func:`seal`).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

import nacl.exceptions
import nacl.signing
import nkeys
from mailslot_broker import protocol as p
from mailslot_broker.protocol import principals

from ._boundary import boundary

if TYPE_CHECKING:
    from .link import Link
    from .mailbox import Mailbox
    from .message import Message
    from .outgoing import Outgoing

log = logging.getLogger("mailslot.signing")
M = TypeVar("M", bound="Message")
Header = p.Header

#: How long a looked-up key (or its absence) is trusted before it is read again: a revoked
#: agent's mail reads unverified at most this long after the key is withdrawn.
KEY_CACHE_SECONDS = 30.0

REASON_UNSIGNED = "unsigned"
REASON_NO_SENDER = "no sender"
REASON_UNKNOWN_KEY = "no public key for the sender"
REASON_BAD_SIGNATURE = "signature does not match"
#: Prefix of the dead letter's reason in a ``require_verified`` mailbox.
DEAD_REASON_PREFIX = "sender not verified"


def _recipient(subject: str, headers: dict[str, str]) -> str | None:
    """The address a publish stores mail for: from ``mbox.<p>.<to>``, or from the schedule
    target of ``msched.<to>.<id>``; None for anything that is not mail."""
    if subject.startswith(p.SCHEDULE_PREFIX + "."):
        subject = headers.get(Header.NATS_SCHEDULE_TARGET, "")
    parts = subject.split(".", 2)
    if len(parts) != 3 or parts[0] != p.MAIL_PREFIX or not parts[1].isdigit():
        return None
    return parts[2]


class Signer:
    """Signs what one agent credential publishes as mail."""

    def __init__(self, address: str, seed: str) -> None:
        self.address = address
        self._kp = nkeys.from_seed(seed.encode())
        self.public_key = self._kp.public_key.decode()

    def sign(self, subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        """Add ``Mailslot-Signature`` to ``headers`` (in place) if this is mail with a sender."""
        if not headers or Header.FROM not in headers or Header.MSG_ID not in headers:
            return
        to = _recipient(subject, headers)
        if to is None:
            return
        text = principals.signed_text(
            msg_id=headers[Header.MSG_ID],
            sender=headers[Header.FROM],
            to=to,
            sent_at=headers.get(Header.SENT_AT, ""),
            body=data,
        )
        headers[principals.SIGNATURE_HEADER] = base64.urlsafe_b64encode(self._kp.sign(text)).decode()


def install(link: Link, address: str, seed: str) -> Signer:
    """Sign every mail message ``link`` publishes from now on (:func:`seal`)."""
    signer = link.signer = Signer(address, seed)
    return signer


def seal(link: Link, out: Outgoing) -> None:
    """Sign ``out`` once, before its first publish, when ``link`` is an agent credential's:
    every path that stores mail (send, send_many, request, reply, delayed) publishes an
    :class:`~mailslot.outgoing.Outgoing` through :mod:`mailslot.sending`, which calls this;
    a retry publishes the same signed headers."""
    if link.signer is not None and principals.SIGNATURE_HEADER not in out.headers:
        link.signer.sign(out.subject, out.data, out.headers)


def public_key_bytes(public_key: str) -> bytes:
    """The raw 32 ed25519 bytes of a ``U...`` nkey public key (ValueError if it is not one)."""
    raw = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    if len(raw) != 35 or raw[0] != nkeys.PREFIX_BYTE_USER:
        raise ValueError(f"not a user nkey: {public_key!r}")
    return raw[1:33]


class KeyCache:
    """Senders' public keys, read from the key bucket by last-by-subject direct get (the one
    read an agent credential may make there) and kept :data:`KEY_CACHE_SECONDS`."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._keys: dict[str, tuple[float, nacl.signing.VerifyKey | None]] = {}

    async def get(self, address: str) -> nacl.signing.VerifyKey | None:
        now = time.monotonic()
        hit = self._keys.get(address)
        if hit is not None and now - hit[0] < KEY_CACHE_SECONDS:
            return hit[1]
        key = await self._read(address)
        self._keys[address] = (now, key)
        return key

    async def _read(self, address: str) -> nacl.signing.VerifyKey | None:
        bucket = principals.KEYS_BUCKET
        try:
            with boundary():
                raw = await self._link.js.get_msg(
                    p.kv_stream(bucket), subject=p.kv_subject(bucket, address), direct=True
                )
            value = json.loads(raw.data or b"null")
            return nacl.signing.VerifyKey(public_key_bytes(value["public_key"]))
        except Exception as exc:  # no bucket, no key, a marker, garbage: not verifiable
            log.debug("no public key for %s: %r", address, exc)
            return None


def _cache(link: Link) -> KeyCache:
    if link.key_cache is None:
        link.key_cache = KeyCache(link)
    return link.key_cache


async def check(link: Link, m: Message) -> str | None:
    """Why ``m``'s sender is not verified, or None when it is."""
    h = m._msg.headers or {}
    sender = h.get(Header.FROM)
    if not sender:
        return REASON_NO_SENDER
    sig = h.get(principals.SIGNATURE_HEADER)
    if not sig:
        return REASON_UNSIGNED
    key = await _cache(link).get(sender)
    if key is None:
        return REASON_UNKNOWN_KEY
    to = m._msg.subject.split(".", 2)[-1]
    text = principals.signed_text(
        msg_id=h.get(Header.MSG_ID, ""),
        sender=sender,
        to=to,
        sent_at=h.get(Header.SENT_AT, ""),
        body=m._msg.data,
    )
    try:
        key.verify(text, base64.urlsafe_b64decode(sig.encode()))
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return REASON_BAD_SIGNATURE
    return None


async def checked(link: Link, m: M) -> M:
    """``m`` with its verdict set (a reply: found by sequence, not received)."""
    m._unverified = await check(link, m)
    return m


async def screen(mailbox: Mailbox, messages: Iterable[Message]) -> list[Message]:
    """Set each message's verdict; in a ``require_verified`` mailbox, dead-letter the
    unverified ones (``term`` with the reason) and leave them out."""
    out = []
    for m in messages:
        reason = await check(mailbox._link, m)
        m._unverified = reason
        if reason is not None and getattr(mailbox, "require_verified", False):
            await m.term(reason=f"{DEAD_REASON_PREFIX}: {reason}")
            continue
        out.append(m)
    return out


async def next_screened(mailbox: Mailbox, timeout: float | None, batch: int) -> Message | None:
    """The receiver's next message that passes :func:`screen`, within ``timeout`` in all."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        m = await mailbox._receiver.next(left, batch)
        if m is None or await screen(mailbox, [m]):
            return m


__all__ = [
    "KEY_CACHE_SECONDS",
    "KeyCache",
    "Signer",
    "check",
    "checked",
    "install",
    "next_screened",
    "screen",
]
