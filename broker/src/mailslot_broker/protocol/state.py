"""The state store: its bucket, how a key is written on the wire, and the limits on both.

Frameworks keep their state here (checkpoints, flow state, agent state, tasks): one KV bucket
``MAILSLOT_STATE``, history 1, per-message TTL allowed. A state key is a namespace and 1..8
segments of arbitrary unicode ('.', '/', spaces); KV keys are not arbitrary, so each segment
is its UTF-8 in URL-safe base64 without padding, and the KV key is
``<namespace>.<b64(seg1)>.<b64(seg2)>...``. Segments stay separate subject tokens, so every
key under a prefix is matched by the server with a subject filter (the prefix's own key, and
``<prefix>.>``), never by listing the bucket.

Values are opaque bytes. Their limit comes from the server's ``max_payload``, which counts
the headers of a write too: :func:`max_value_size` leaves room for them.

**An agent's part of the bucket.** An agent credential (``protocol.principals``) keeps its
namespaces under a scope of its own: ``=agent.<b64(address)>.<namespace>.<b64(seg)>...``
(:func:`agent_state_scope`). The address is one token (its UTF-8 in URL-safe base64, like a
segment), so one agent's scope can never be a prefix of another's (``a.b`` and ``a`` are
``YS5i`` and ``YQ``: different tokens, and a subject filter matches whole tokens), and the
first token has a ``=``, which no namespace has, so no tenant namespace's filter (``<ns>.>``)
matches an agent's keys, nor an agent's filter a namespace's. A subject permission on
``...=agent.<b64(address)>.>`` therefore covers exactly that agent's state, all its
namespaces, and nothing else. How an agent writes and reads it (through the agent writes
stream, never the bucket) is in :mod:`.agent_writes`.
"""

from __future__ import annotations

import base64
import binascii
import re

from ..errors import ProtocolViolation
from .names import Header

#: The bucket (stream ``KV_MAILSLOT_STATE``). Created on first use, not at connect.
STATE_BUCKET = "MAILSLOT_STATE"
#: A namespace: one subject token of these characters.
MAX_NAMESPACE_LENGTH = 64
#: Segments of a key (and of a prefix, which may also be empty).
MAX_KEY_SEGMENTS = 8
#: A segment's UTF-8 length limit (its encoded token is a third longer).
MAX_SEGMENT_BYTES = 512
#: The whole KV key (namespace, dots and encoded segments): a write's subject must fit in the
#: server's 4 KiB protocol line with its reply subject, so 8 segments of 512 bytes (5.5 KiB
#: encoded) cannot all be that long at once.
MAX_STATE_KV_KEY = 3072
#: Room left in ``max_payload`` for a write's headers (expected revision, TTL).
STATE_HEADER_ALLOWANCE = 256

_NAMESPACE = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_NAMESPACE_LENGTH}}}")


#: The first token of every agent's scope: ``=`` is valid in a KV key but in no namespace.
AGENT_STATE_TOKEN = "=agent"


def validate_namespace(namespace: object) -> str:
    """1..64 characters of ``[A-Za-z0-9_-]``."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ProtocolViolation(
            f"a state namespace is 1..{MAX_NAMESPACE_LENGTH} characters of A-Z a-z 0-9 _ -, "
            f"not {namespace!r:.80}"
        )
    return namespace


def _segment(seg: object) -> str:
    if not isinstance(seg, str):
        raise ProtocolViolation(f"a state key segment must be a str, not {type(seg).__name__}")
    if not seg:
        raise ProtocolViolation("a state key segment is empty")
    try:
        size = len(seg.encode())
    except UnicodeError:
        raise ProtocolViolation(f"state key segment {seg[:40]!r} is not encodable as UTF-8") from None
    if size > MAX_SEGMENT_BYTES:
        raise ProtocolViolation(f"a state key segment is {size} bytes long; the limit is {MAX_SEGMENT_BYTES}")
    return seg


def validate_state_prefix(prefix: object) -> tuple[str, ...]:
    """0..8 segments: a str is one segment, a tuple (or list) its segments."""
    if isinstance(prefix, str):
        prefix = (prefix,)
    if not isinstance(prefix, (tuple, list)):
        raise ProtocolViolation(f"a state key is a str or a tuple of str, not {type(prefix).__name__}")
    if len(prefix) > MAX_KEY_SEGMENTS:
        raise ProtocolViolation(f"a state key has at most {MAX_KEY_SEGMENTS} segments, got {len(prefix)}")
    return tuple(_segment(s) for s in prefix)


def validate_state_key(key: object) -> tuple[str, ...]:
    """1..8 segments (see :func:`validate_state_prefix`)."""
    out = validate_state_prefix(key)
    if not out:
        raise ProtocolViolation("a state key has at least one segment")
    return out


def _token(seg: str) -> str:
    return base64.urlsafe_b64encode(seg.encode()).decode().rstrip("=")


def agent_state_scope(address: str) -> str:
    """The part of the bucket an agent credential for ``address`` (validated) keeps its
    namespaces in: ``=agent.<b64(address)>``."""
    return f"{AGENT_STATE_TOKEN}.{_token(address)}"


def _head(namespace: str, scope: str | None) -> str:
    return namespace if scope is None else f"{scope}.{namespace}"


def state_kv_key(namespace: str, key: tuple[str, ...], *, scope: str | None = None) -> str:
    """The KV key of ``key`` in ``namespace`` (both already validated), under an agent's
    ``scope`` (:func:`agent_state_scope`) when given. The length limit counts the scope."""
    kv_key = ".".join((_head(namespace, scope), *map(_token, key)))
    if len(kv_key) > MAX_STATE_KV_KEY:
        raise ProtocolViolation(
            f"state key is {len(kv_key)} characters encoded; the limit is {MAX_STATE_KV_KEY}"
        )
    return kv_key


def state_key_of(namespace: str, kv_key: str, *, scope: str | None = None) -> tuple[str, ...] | None:
    """The key a KV key of ``namespace`` (under ``scope``) encodes; None if it is not one."""
    head = _head(namespace, scope) + "."
    if not kv_key.startswith(head) or len(kv_key) == len(head):
        return None
    rest = kv_key[len(head) :]
    out: list[str] = []
    for token in rest.split("."):
        try:
            out.append(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
    return tuple(out)


def state_filters(namespace: str, prefix: tuple[str, ...], *, scope: str | None = None) -> list[str]:
    """KV key patterns matching every key under ``prefix`` (itself included): ``<ns>.>`` for
    the whole namespace, else the prefix's own key and ``<prefix>.>``."""
    if not prefix:
        return [f"{_head(namespace, scope)}.>"]
    own = state_kv_key(namespace, prefix, scope=scope)
    return [own, f"{own}.>"] if len(prefix) < MAX_KEY_SEGMENTS else [own]


def delete_headers(revision: int | None, *, rollup: bool = True) -> dict[str, str]:
    """Headers of a delete: a KV purge of the key (its value goes, not only hidden), landing
    only while ``revision`` is still its latest when one is given. Sent with a TTL, so a
    deleted key leaves no marker behind for good. ``rollup=False`` for an agent's delete: the
    agent writes stream refuses ``Nats-Rollup`` and keeps one message per subject anyway, so
    the marker replaces the value there and, sourced, in the bucket (history 1)."""
    headers = {"KV-Operation": "PURGE"}
    if rollup:
        headers["Nats-Rollup"] = "sub"
    if revision is not None:
        headers[Header.NATS_EXPECTED_LAST_SUBJECT_SEQ] = str(revision)
    return headers


def max_value_size(max_payload: int) -> int:
    """The largest value a server with this ``max_payload`` takes with a write's headers."""
    return max(0, max_payload - STATE_HEADER_ALLOWANCE)


__all__ = [
    "AGENT_STATE_TOKEN",
    "MAX_KEY_SEGMENTS",
    "MAX_NAMESPACE_LENGTH",
    "MAX_SEGMENT_BYTES",
    "MAX_STATE_KV_KEY",
    "STATE_BUCKET",
    "STATE_HEADER_ALLOWANCE",
    "agent_state_scope",
    "delete_headers",
    "max_value_size",
    "state_filters",
    "state_key_of",
    "state_kv_key",
    "validate_namespace",
    "validate_state_key",
    "validate_state_prefix",
]
