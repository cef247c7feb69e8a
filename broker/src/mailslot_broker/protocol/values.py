"""Values carried on the wire: priorities, addresses, topics and TTLs, with their validation."""

from __future__ import annotations

import enum
import itertools
import math
import numbers
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta

from ..errors import InvalidAddress, InvalidPriority, InvalidTopic, InvalidTTL, ProtocolViolation
from .defaults import (
    MAX_ACK_WAIT,
    MAX_BACKOFF_STEPS,
    MAX_DELIVER_LIMIT,
    MAX_SECONDS,
    MIN_ACK_WAIT,
    MIN_BACKOFF,
)

# --- priorities ------------------------------------------------------------------------------


class Priority(enum.IntEnum):
    """Lower value = served first. The value is the digit in the subject."""

    CRITICAL = 0
    URGENT = 1
    NORMAL = 2
    LOW = 3

    @property
    def label(self) -> str:
        return _LABELS[self]  # a lookup: the enum's ``name`` is a slow descriptor (every send)

    def __str__(self) -> str:
        """``print(msg.priority)`` shows ``critical``, as a person reads it; the wire always
        uses ``int(priority)`` or ``label``, never ``str()``."""
        return self.label

    def __format__(self, spec: str) -> str:
        """``f"{priority}"`` is the label too; a numeric spec (``:d``, ``:02``) formats the
        digit."""
        return self.label if not spec else format(int(self), spec)


PRIORITIES: tuple[Priority, ...] = tuple(Priority)


_LABELS = {prio: prio.name.lower() for prio in Priority}


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
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
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
        if not _TOKEN.fullmatch(token):
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
        if not _TOKEN.fullmatch(token):
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


# --- numbers ---------------------------------------------------------------------------------


def _show(value: object) -> str:
    """A short repr for error messages (a 5000-digit int has no repr at all in Python 3.11+)."""
    try:
        text = repr(value)
    except Exception:
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= 40 else text[:37] + "..."


def _span(seconds: float) -> str:
    """``31536000 s (365 days)``: a limit as a person reads it."""
    text = f"{seconds:.0f} s" if seconds == int(seconds) else f"{seconds:g} s"
    for unit, size in (("days", 86400.0), ("h", 3600.0)):
        if seconds >= size and seconds % size == 0:
            return f"{text} ({seconds / size:.0f} {unit})"
    return text


def validate_seconds(
    value: object, *, what: str, minimum: float = 0.0, maximum: float = MAX_SECONDS
) -> float:
    """A duration as float seconds: an int, float or ``timedelta`` (never a bool), finite and
    in ``[minimum, maximum]``; else :class:`InvalidTTL` naming ``what`` and the range."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTTL(
            f"{what} must be a number of seconds between {_span(minimum)} and {_span(maximum)} "
            f"(or a timedelta), not {type(value).__name__} {_show(value)}"
        )
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):
        number = math.inf
    if not math.isfinite(number) or not minimum <= number <= maximum:
        raise InvalidTTL(f"{what} must be between {_span(minimum)} and {_span(maximum)}, got {_show(value)}")
    return number


def validate_ttl(seconds: object, *, what: str = "ttl", maximum: float = MAX_SECONDS) -> float:
    """A message or lease TTL (or a delay): at least ``MIN_TTL_SECONDS``, at most ``maximum``."""
    return validate_seconds(seconds, what=what, minimum=MIN_TTL_SECONDS, maximum=maximum)


def validate_count(
    value: object, *, what: str, minimum: int, maximum: int, unlimited: int | None = None
) -> int:
    """An int (never a bool or a float) in ``[minimum, maximum]``, or exactly ``unlimited``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ProtocolViolation(f"{what} must be an int, not {type(value).__name__} {_show(value)}")
    number = int(value)
    if unlimited is not None and number == unlimited:
        return number
    if not minimum <= number <= maximum:
        extra = f" (or {unlimited} for unlimited)" if unlimited is not None else ""
        raise ProtocolViolation(f"{what} must be between {minimum} and {maximum}{extra}, got {_show(value)}")
    return number


def validate_retry(
    ack_wait: object, max_deliver: object, backoff: object
) -> tuple[float, int, tuple[float, ...]]:
    """The retry settings of a mailbox's consumers, checked the way nats-server would and
    stricter: (ack wait, max deliveries, backoff steps).

    ``max_deliver`` is -1 (unlimited) or 1..``MAX_DELIVER_LIMIT`` and must exceed the number of
    backoff steps; each step is an ack wait of its own (the server takes the first as the ack
    wait), ``MIN_BACKOFF``..``MAX_ACK_WAIT`` seconds, at most ``MAX_BACKOFF_STEPS`` of them.
    """
    aw = validate_seconds(ack_wait, what="ack_wait", minimum=MIN_ACK_WAIT, maximum=MAX_ACK_WAIT)
    md = validate_count(max_deliver, what="max_deliver", minimum=1, maximum=MAX_DELIVER_LIMIT, unlimited=-1)
    if backoff is None:
        backoff = ()
    if isinstance(backoff, (str, bytes, bytearray, Mapping)) or not isinstance(backoff, Iterable):
        raise ProtocolViolation(
            f"backoff must be a sequence of seconds, not {type(backoff).__name__} {_show(backoff)}"
        )
    steps = list(itertools.islice(backoff, MAX_BACKOFF_STEPS + 1))
    if len(steps) > MAX_BACKOFF_STEPS:
        raise ProtocolViolation(f"backoff has more than {MAX_BACKOFF_STEPS} steps")
    bo = tuple(
        validate_seconds(step, what=f"backoff[{i}]", minimum=MIN_BACKOFF, maximum=MAX_ACK_WAIT)
        for i, step in enumerate(steps)
    )
    if bo and md != -1 and md <= len(bo):
        raise ProtocolViolation(
            f"max_deliver ({md}) must be larger than the number of backoff steps ({len(bo)}), or -1"
        )
    return aw, md, bo


def nats_ttl_value(seconds: float) -> str:
    """``Nats-TTL`` value. Whole seconds, rounded up, so a TTL is never shortened. Check a
    caller's TTL with :func:`validate_ttl` first: this only formats."""
    whole = int(seconds)
    if whole < seconds:
        whole += 1
    return f"{whole}s"


# --- header values ---------------------------------------------------------------------------

#: What nats-py accepts as a header name (RFC 7230 token characters).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE_BAD = ("\r", "\n", "\0")


def validate_header_name(name: object) -> str:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise ProtocolViolation(
            f"invalid header name {_show(name)}: use letters, digits and !#$%&'*+-.^_`|~ (no ':' or spaces)"
        )
    return name


def validate_header_value(value: object, *, what: str) -> str:
    """A value NATS carries unchanged: a str on one line (no CR, LF or NUL), encodable as
    UTF-8, without leading or trailing whitespace (NATS strips it)."""
    if not isinstance(value, str):
        raise ProtocolViolation(f"{what} must be a str, not {type(value).__name__} {_show(value)}")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeError:
            raise ProtocolViolation(f"{what} is not encodable as UTF-8: {_show(value)}") from None
    if any(c in value for c in _HEADER_VALUE_BAD):
        raise ProtocolViolation(f"{what} must be a single line (no CR, LF or NUL): {_show(value)}")
    if value != value.strip():
        raise ProtocolViolation(f"{what} has leading or trailing whitespace (NATS strips it): {_show(value)}")
    return value
