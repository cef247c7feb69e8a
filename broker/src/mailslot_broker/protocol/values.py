"""Values carried on the wire: priorities, addresses, topics and TTLs, with their validation."""

from __future__ import annotations

import enum
import re

from ..errors import InvalidAddress, InvalidPriority, InvalidTopic, InvalidTTL

# --- priorities ------------------------------------------------------------------------------


class Priority(enum.IntEnum):
    """Lower value = served first. The value is the digit in the subject."""

    CRITICAL = 0
    URGENT = 1
    NORMAL = 2
    LOW = 3

    @property
    def label(self) -> str:
        return self.name.lower()


PRIORITIES: tuple[Priority, ...] = tuple(Priority)


def parse_priority(value: Priority | str | int) -> Priority:
    """Accept a :class:`Priority`, its name (any case) or its digit."""
    if isinstance(value, Priority):
        return value
    if isinstance(value, bool):
        raise InvalidPriority(f"unknown priority {value!r}")
    if isinstance(value, int):
        try:
            return Priority(value)
        except ValueError:
            raise InvalidPriority(
                f"unknown priority {value!r}; use one of 0..3 or " + ", ".join(p.label for p in PRIORITIES)
            ) from None
    if isinstance(value, str):
        key = value.strip().upper()
        if key in Priority.__members__:
            return Priority[key]
        if key.isdigit():
            return parse_priority(int(key))
    raise InvalidPriority(f"unknown priority {value!r}; use one of " + ", ".join(p.label for p in PRIORITIES))


# --- addresses and topics --------------------------------------------------------------------

#: An address is 1..MAX_ADDRESS_TOKENS dot-separated tokens of letters, digits, '_' and '-'.
MAX_ADDRESS_LENGTH = 128
MAX_ADDRESS_TOKENS = 8
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
#: Topic names share the token alphabet; patterns may also use '*' tokens and a final '>'.
MAX_TOPIC_LENGTH = 200


def validate_address(address: object) -> str:
    """Return ``address`` if it can be a mailbox address, else raise :class:`InvalidAddress`.

    The rules guarantee that every subject built from an address is literal: no wildcard, no
    whitespace, no empty token, so an address can never read or purge another mailbox.
    """
    if not isinstance(address, str):
        raise InvalidAddress(f"address must be a str, not {type(address).__name__}")
    if not address:
        raise InvalidAddress("address is empty")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress(f"address is {len(address)} characters long; the limit is {MAX_ADDRESS_LENGTH}")
    tokens = address.split(".")
    if len(tokens) > MAX_ADDRESS_TOKENS:
        raise InvalidAddress(
            f"address {address!r} has {len(tokens)} tokens; the limit is {MAX_ADDRESS_TOKENS}"
        )
    for token in tokens:
        if not token:
            raise InvalidAddress(f"address {address!r} has an empty token")
        if not _TOKEN.match(token):
            bad = sorted({c for c in token if not re.match(r"[A-Za-z0-9_-]", c)})
            raise InvalidAddress(
                f"address {address!r} contains {''.join(bad)!r}; allowed are letters, digits, "
                "'_', '-' and '.' between tokens (no wildcards, no whitespace)"
            )
    return address


def _validate_topic_like(name: object, *, allow_wildcards: bool, what: str) -> str:
    if not isinstance(name, str):
        raise InvalidTopic(f"{what} must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidTopic(f"{what} is empty")
    if len(name) > MAX_TOPIC_LENGTH:
        raise InvalidTopic(f"{what} is longer than {MAX_TOPIC_LENGTH} characters")
    tokens = name.split(".")
    for i, token in enumerate(tokens):
        if allow_wildcards and token == "*":
            continue
        if allow_wildcards and token == ">" and i == len(tokens) - 1:
            continue
        if not token:
            raise InvalidTopic(f"{what} {name!r} has an empty token")
        if not _TOKEN.match(token):
            hint = "wildcards '*' and a final '>'" if allow_wildcards else "no wildcards"
            raise InvalidTopic(
                f"{what} {name!r} has an invalid token {token!r} (letters, digits, '_', '-'; {hint})"
            )
    return name


def validate_topic(name: object) -> str:
    """A concrete topic to publish on: literal tokens only."""
    return _validate_topic_like(name, allow_wildcards=False, what="topic")


def validate_topic_pattern(pattern: object) -> str:
    """A subscription pattern: tokens, ``*`` for one token, ``>`` as the last token."""
    return _validate_topic_like(pattern, allow_wildcards=True, what="topic pattern")


MIN_TTL_SECONDS = 1.0


def validate_ttl(seconds: float, *, what: str = "ttl") -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidTTL(f"{what} must be a number of seconds, not {seconds!r}")
    if seconds != seconds or seconds < MIN_TTL_SECONDS:  # NaN or too small
        raise InvalidTTL(f"{what} must be at least {MIN_TTL_SECONDS:g} s, got {seconds!r}")
    return float(seconds)


def nats_ttl_value(seconds: float) -> str:
    """``Nats-TTL`` value. Whole seconds, rounded up, so a TTL is never shortened."""
    whole = int(seconds)
    if whole < seconds:
        whole += 1
    return f"{whole}s"
