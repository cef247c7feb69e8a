"""Tags and keep-latest keys on mail: what may go in ``Mailslot-Tags`` and
``Mailslot-Replace-Key``.

Both are plain headers so that any NATS client can set and read them. Tags are a
comma-separated list (the form mq9's ``mq9-tags`` uses too), so a tag may not contain a comma
or whitespace; a query matches a tag exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import ProtocolViolation
from .values import validate_header_value

#: Most tags on one message, and longest tag: a header is read on every query of the mailbox.
MAX_TAGS = 16
MAX_TAG_LENGTH = 64
#: Longest keep-latest key (it rides in a header of every keyed message).
MAX_REPLACE_KEY_LENGTH = 256

_TAG = re.compile(r"[^\s,]+")


def validate_tag(tag: object) -> str:
    if not isinstance(tag, str):
        raise ProtocolViolation(f"a tag must be a str, not {type(tag).__name__}")
    if not tag or len(tag) > MAX_TAG_LENGTH or not _TAG.fullmatch(tag):
        raise ProtocolViolation(
            f"tag {tag[:80]!r} must be 1..{MAX_TAG_LENGTH} characters without commas or whitespace"
        )
    return validate_header_value(tag, what="tag")


def validate_tags(tags: Iterable[object]) -> tuple[str, ...]:
    """Checked tags, duplicates dropped, order kept. A bare str is refused (it would be read
    as a list of one-letter tags)."""
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable):
        raise ProtocolViolation(f"tags must be a list of str, not {type(tags).__name__}")
    out: list[str] = []
    for t in tags:
        t = validate_tag(t)
        if t not in out:
            out.append(t)
    if len(out) > MAX_TAGS:
        raise ProtocolViolation(f"a message has at most {MAX_TAGS} tags, not {len(out)}")
    return tuple(out)


def encode_tags(tags: Iterable[str]) -> str:
    return ",".join(tags)


def decode_tags(value: str | None) -> tuple[str, ...]:
    """The tags of a stored message; tolerant of what a foreign client wrote (spaces around
    commas, empty items)."""
    if not value:
        return ()
    return tuple(dict.fromkeys(t.strip() for t in value.split(",") if t.strip()))


def validate_replace_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise ProtocolViolation(f"replace_key must be a non-empty str, not {type(key).__name__}")
    if len(key) > MAX_REPLACE_KEY_LENGTH:
        raise ProtocolViolation(f"replace_key is longer than {MAX_REPLACE_KEY_LENGTH} characters")
    return validate_header_value(key, what="replace_key")
