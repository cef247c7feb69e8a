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

**Vouching.** A service that speaks for senders of its own (the Synadia bridge writes mail
from ``sap.<agent>.<owner>.<name>`` for a protocol caller whose ``Agent-Sender`` it verified)
signs that mail with *its* key and says so in ``Mailslot-Vouched-By: <its address>``. The
receiver then checks the signature against the voucher's public key, and only if the voucher's
record in the key bucket carries a delegation the operator granted (``"speaks_for":
["sap.>"]``, :func:`grant_vouching`) that covers the sender. Such mail reads verified, and
:attr:`Message.verified_by` names the voucher. A voucher header on mail from anyone without
that delegation (or whose signature is not the voucher's) reads unverified.
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
from .errors import InvalidInput

if TYPE_CHECKING:
    from .client import Mailslot
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
REASON_UNKNOWN_VOUCHER = "no public key for the voucher"
REASON_NOT_DELEGATED = "the voucher may not speak for the sender"
#: Prefix of the dead letter's reason in a ``require_verified`` mailbox.
DEAD_REASON_PREFIX = "sender not verified"
#: The address whose key signed mail sent in another sender's name (see Vouching above).
#: Set by the SDK's signer, never by a caller (``Mailslot-`` headers are reserved).
VOUCHED_BY_HEADER = "Mailslot-Vouched-By"
#: The key-record field that lists the sender patterns a voucher may speak for.
SPEAKS_FOR = "speaks_for"


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
    """Signs what one agent credential (or one voucher, ``vouching=True``) publishes as mail.

    A voucher's mail whose sender is not ``address`` gets ``Mailslot-Vouched-By: <address>``:
    it verifies only where the key bucket delegates that sender to ``address`` (an agent
    credential's mail in another's name simply does not verify). A voucher's connection
    is a tenant credential's, so its replies come back the tenant's way (not through an
    agent's reply consumer)."""

    def __init__(self, address: str, seed: str, *, vouching: bool = False) -> None:
        self.address = address
        self.vouching = vouching
        self._kp = nkeys.from_seed(seed.encode())
        self.public_key = self._kp.public_key.decode()

    def sign(self, subject: str, data: bytes, headers: dict[str, str] | None) -> None:
        """Add ``Mailslot-Signature`` to ``headers`` (in place) if this is mail with a sender."""
        if not headers or Header.FROM not in headers or Header.MSG_ID not in headers:
            return
        to = _recipient(subject, headers)
        if to is None:
            return
        if self.vouching and headers[Header.FROM] != self.address:
            headers[VOUCHED_BY_HEADER] = self.address
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


def vouch(ms: Mailslot, address: str, seed: str) -> Signer:
    """Sign the mail ``ms`` sends (a tenant credential's client) with ``seed``, as the
    voucher ``address``: its own mail verifies against the public key the key bucket holds
    for ``address``, mail in another sender's name (``sender=``) where :func:`grant_vouching`
    delegated that sender to ``address``."""
    signer = ms._link.signer = Signer(address, seed, vouching=True)
    return signer


async def grant_vouching(ms: Mailslot, address: str, *, public_key: str, speaks_for: Iterable[str]) -> None:
    """The operator's grant (with a tenant credential): ``address`` signs with ``public_key``
    and may vouch for senders matching ``speaks_for`` (NATS-style patterns: ``sap.>``).
    Replaces the address's key record (issuing or revoking an agent credential for the same
    address replaces or withdraws it, and the delegation with it)."""
    from mailslot_broker.agents import check_patterns, keys_bucket_config

    patterns = list(speaks_for)
    if not patterns:
        raise InvalidInput("speaks_for names at least one sender pattern")
    try:
        patterns = check_patterns(patterns, "address")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    public_key_bytes(public_key)  # ValueError unless a user nkey
    value = {"public_key": public_key, SPEAKS_FOR: patterns, "issued_at": time.time()}
    with boundary():
        kv = await ms._link.js.create_key_value(keys_bucket_config())
        await kv.put(address, json.dumps(value).encode())


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


def matches(pattern: str, address: str) -> bool:
    """Whether ``address`` matches a NATS-style ``pattern`` (``*`` one token, ``>`` the rest)."""
    pt, at = pattern.split("."), address.split(".")
    for i, tok in enumerate(pt):
        if tok == ">":
            return len(at) > i
        if i >= len(at) or (tok != "*" and tok != at[i]):
            return False
    return len(pt) == len(at)


class KeyRecord:
    """One address's key record: its public key, and the senders it may vouch for."""

    __slots__ = ("key", "speaks_for")

    def __init__(self, key: nacl.signing.VerifyKey, speaks_for: tuple[str, ...] = ()) -> None:
        self.key = key
        self.speaks_for = speaks_for

    def may_speak_for(self, sender: str) -> bool:
        return any(matches(pat, sender) for pat in self.speaks_for)


class KeyCache:
    """Senders' public keys, read from the key bucket by last-by-subject direct get (the one
    read an agent credential may make there) and kept :data:`KEY_CACHE_SECONDS`."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._keys: dict[str, tuple[float, KeyRecord | None]] = {}

    async def get(self, address: str) -> nacl.signing.VerifyKey | None:
        rec = await self.record(address)
        return None if rec is None else rec.key

    async def record(self, address: str) -> KeyRecord | None:
        now = time.monotonic()
        hit = self._keys.get(address)
        if hit is not None and now - hit[0] < KEY_CACHE_SECONDS:
            return hit[1]
        rec = await self._read(address)
        self._keys[address] = (now, rec)
        return rec

    async def _read(self, address: str) -> KeyRecord | None:
        bucket = principals.KEYS_BUCKET
        try:
            with boundary():
                raw = await self._link.js.get_msg(
                    p.kv_stream(bucket), subject=p.kv_subject(bucket, address), direct=True
                )
            value = json.loads(raw.data or b"null")
            key = nacl.signing.VerifyKey(public_key_bytes(value["public_key"]))
            speaks = value.get(SPEAKS_FOR) or []
            return KeyRecord(key, tuple(x for x in speaks if isinstance(x, str)))
        except Exception as exc:  # no bucket, no key, a marker, garbage: not verifiable
            log.debug("no public key for %s: %r", address, exc)
            return None


def _cache(link: Link) -> KeyCache:
    if link.key_cache is None:
        link.key_cache = KeyCache(link)
    return link.key_cache


async def check(link: Link, m: Message) -> str | None:
    """Why ``m``'s sender is not verified, or None when it is."""
    m._verified_by = None
    h = m._msg.headers or {}
    sender = h.get(Header.FROM)
    if not sender:
        return REASON_NO_SENDER
    sig = h.get(principals.SIGNATURE_HEADER)
    if not sig:
        return REASON_UNSIGNED
    voucher = h.get(VOUCHED_BY_HEADER)
    if voucher and voucher != sender:
        rec = await _cache(link).record(voucher)
        if rec is None:
            return REASON_UNKNOWN_VOUCHER
        if not rec.may_speak_for(sender):
            return REASON_NOT_DELEGATED
    else:
        voucher = None
        rec = await _cache(link).record(sender)
        if rec is None:
            return REASON_UNKNOWN_KEY
    key = rec.key
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
    m._verified_by = voucher
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
    "SPEAKS_FOR",
    "VOUCHED_BY_HEADER",
    "KeyCache",
    "KeyRecord",
    "Signer",
    "check",
    "checked",
    "grant_vouching",
    "install",
    "matches",
    "next_screened",
    "screen",
    "vouch",
]
