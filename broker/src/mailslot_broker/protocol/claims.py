"""Advisory claims: their keys on the wire, their record, and the limits on both.

A claim says "``holder`` is working on ``key`` until ``expires_at``" (a key is typically a
repository path). One KV key per claimed key in bucket ``MAILSLOT_CLAIMS``, written with a
per-message TTL: the server removes it when the claim runs out, so a crashed holder frees
what it held. Claim keys are arbitrary strings ('/', '.', spaces, any unicode), KV keys are
not, so the KV key is the claim key's UTF-8 in URL-safe base64 without padding (letters,
digits, '-' and '_': always a valid, literal KV key). The value is JSON and carries the claim
key itself, so a reader never has to decode the KV key.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Iterable

from pydantic import BaseModel, ValidationError

from ..errors import ProtocolViolation
from .defaults import DAY
from .names import Header

#: The most keys one claim, renew or release may name (each is one KV write).
MAX_CLAIM_KEYS = 64
#: A claim key's UTF-8 length limit (its KV key is a third longer).
MAX_CLAIM_KEY_BYTES = 1024
#: Longest claim TTL: a claim is renewed while the work goes on, not taken for good.
MAX_CLAIM_TTL = DAY
#: Length limits of the holder and the reason.
MAX_HOLDER_LENGTH = 256
MAX_REASON_LENGTH = 500


def validate_claim_key(key: object) -> str:
    """A claim key: a non-empty str without NUL or line breaks, at most
    ``MAX_CLAIM_KEY_BYTES`` of UTF-8."""
    if not isinstance(key, str):
        raise ProtocolViolation(f"a claim key must be a str, not {type(key).__name__}")
    if not key:
        raise ProtocolViolation("a claim key is empty")
    try:
        size = len(key.encode())
    except UnicodeError:
        raise ProtocolViolation(f"claim key {key[:40]!r} is not encodable as UTF-8") from None
    if size > MAX_CLAIM_KEY_BYTES:
        raise ProtocolViolation(f"claim key is {size} bytes long; the limit is {MAX_CLAIM_KEY_BYTES}")
    if any(c in key for c in "\0\r\n"):
        raise ProtocolViolation(f"claim key {key[:40]!r} contains NUL or a line break")
    return key


def validate_claim_keys(keys: object) -> list[str]:
    """1..``MAX_CLAIM_KEYS`` claim keys (one str counts as one key), duplicates dropped, in
    the order given."""
    if isinstance(keys, str):
        keys = [keys]
    if isinstance(keys, (bytes, bytearray)) or not isinstance(keys, Iterable):
        raise ProtocolViolation(f"keys must be a list of str, not {type(keys).__name__}")
    given = list(itertools.islice(keys, 4 * MAX_CLAIM_KEYS + 1))
    out = list(dict.fromkeys(validate_claim_key(k) for k in given))
    if not out:
        raise ProtocolViolation("no keys given")
    if len(given) > 4 * MAX_CLAIM_KEYS or len(out) > MAX_CLAIM_KEYS:
        raise ProtocolViolation(f"more than {MAX_CLAIM_KEYS} keys in one call")
    return out


def validate_holder(holder: object, *, what: str = "holder", limit: int = MAX_HOLDER_LENGTH) -> str:
    """A holder (or a reason): a non-empty single-line str of at most ``limit`` characters."""
    if not isinstance(holder, str) or not holder.strip():
        raise ProtocolViolation(f"{what} must be a non-empty str")
    if len(holder) > limit or any(c in holder for c in "\0\r\n"):
        raise ProtocolViolation(f"{what} must be one line of at most {limit} characters")
    return holder


def claim_kv_key(key: str) -> str:
    """The KV key of a claim key (URL-safe base64 of its UTF-8, no padding)."""
    return base64.urlsafe_b64encode(validate_claim_key(key).encode()).decode().rstrip("=")


def claim_key_of(kv_key: str) -> str | None:
    """The claim key a KV key encodes, None if it encodes none."""
    try:
        return base64.urlsafe_b64decode(kv_key + "=" * (-len(kv_key) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def release_headers(revision: int) -> dict[str, str]:
    """Headers of a release: a KV purge of the key that only lands while ``revision`` is still
    its latest (the claim the releaser read as its own), so it never removes a claim taken
    since. Sent with a TTL, so released keys leave no marker behind for good."""
    return {
        "KV-Operation": "PURGE",
        "Nats-Rollup": "sub",
        Header.NATS_EXPECTED_LAST_SUBJECT_SEQ: str(revision),
    }


class ClaimRecord(BaseModel):
    """Value of ``$KV.MAILSLOT_CLAIMS.<claim_kv_key(key)>``. Times are unix seconds (float);
    ``expires_at`` is the holder's clock, the server's TTL is what frees the key."""

    v: int = 1
    key: str
    holder: str
    reason: str | None = None
    claimed_at: float
    expires_at: float

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> ClaimRecord | None:
        """The record, None for garbage (which no holder owns)."""
        try:
            return cls.model_validate_json((data or b"").strip() or b"{}")
        except ValidationError:
            return None


__all__ = [
    "MAX_CLAIM_KEYS",
    "MAX_CLAIM_KEY_BYTES",
    "MAX_CLAIM_TTL",
    "MAX_HOLDER_LENGTH",
    "MAX_REASON_LENGTH",
    "ClaimRecord",
    "claim_key_of",
    "claim_kv_key",
    "release_headers",
    "validate_claim_key",
    "validate_claim_keys",
    "validate_holder",
]
