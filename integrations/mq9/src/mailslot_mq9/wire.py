"""mq9's wire as its SDKs speak it (robustmq/mq9 ``protocol.md`` and ``python/mq9/client.py``):
subjects, the error phrases callers match, request bodies checked field by field, and the
message object FETCH and QUERY return.

Every reply is a JSON object with an ``error`` string (``""`` = success): the mq9 SDK raises
on anything else, so even a request the gateway cannot parse gets one.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import mailslot

PREFIX = "$mq9.AI"
#: The queue group every gateway replica joins, so that each request is answered once.
QUEUE_GROUP = "mailslot-mq9"

CREATE = "MAILBOX.CREATE"
SEND = "MSG.SEND"
FETCH = "MSG.FETCH"
ACK = "MSG.ACK"
QUERY = "MSG.QUERY"
DELETE = "MSG.DELETE"
REGISTER = "AGENT.REGISTER"
UNREGISTER = "AGENT.UNREGISTER"
REPORT = "AGENT.REPORT"
DISCOVER = "AGENT.DISCOVER"

#: Commands whose subject ends in an address (DELETE: an address, then a msg_id).
WITH_ADDRESS = (SEND, FETCH, ACK, QUERY, DELETE)

#: mq9's three priorities; Mailslot's fourth, ``low``, is reported as ``normal``.
MQ9_PRIORITIES = ("critical", "urgent", "normal")

H_PRIORITY = "mq9-priority"
H_KEY = "mq9-key"
H_DELAY = "mq9-delay"
H_TTL = "mq9-ttl"
H_TAGS = "mq9-tags"

#: mq9's address rule (protocol.md): lowercase alphanumerics and dots, 1..128, no empty token.
_ADDRESS = re.compile(r"[a-z0-9]+(\.[a-z0-9]+)*")
MAX_ADDRESS_LENGTH = 128
#: Mailslot's limit on address tokens (mq9 has none): a longer mq9 address is refused.
MAX_ADDRESS_TOKENS = 8
#: How far mq9's integer fields may go (i64 on the broker side).
MAX_INT = 2**63 - 1


class Mq9Error(mailslot.MailslotError):
    """A request the gateway answers with ``{"error": <text>}``; the text is mq9's phrase."""


def exists_already(address: str) -> Mq9Error:
    return Mq9Error(f"mailbox {address} already exists")


def does_not_exist(address: str) -> Mq9Error:
    return Mq9Error(f"mailbox {address} does not exist")


NOT_FOUND = "message not found"


def reply(**fields: Any) -> bytes:
    return json.dumps({"error": "", **fields}, separators=(",", ":")).encode()


def error(text: str, **fields: Any) -> bytes:
    return json.dumps({"error": text or "error", **fields}, separators=(",", ":")).encode()


def check_address(value: Any, *, what: str = "mailbox address") -> str:
    if not isinstance(value, str):
        raise Mq9Error(f"invalid {what}: must be a string, not {type(value).__name__}")
    if not value or len(value) > MAX_ADDRESS_LENGTH or not _ADDRESS.fullmatch(value):
        raise Mq9Error(
            f"invalid {what} {value[:140]!r}: 1-{MAX_ADDRESS_LENGTH} of a-z, 0-9 and single dots, "
            "not at either end"
        )
    if value.count(".") + 1 > MAX_ADDRESS_TOKENS:
        raise Mq9Error(
            f"invalid {what} {value[:140]!r}: Mailslot takes at most {MAX_ADDRESS_TOKENS} dot-separated parts"
        )
    return value


def body(data: bytes, *, empty_ok: bool = True) -> dict[str, Any]:
    """The request's JSON object; an empty body (and DELETE's ``""``) is ``{}``."""
    if not data.strip() or data.strip() == b'""':
        if empty_ok:
            return {}
        raise Mq9Error("request body is empty; a JSON object is expected")
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Mq9Error(f"request body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Mq9Error(f"request body must be a JSON object, not {type(value).__name__}")
    return value


def integer(d: dict[str, Any], name: str, default: int | None = None, *, minimum: int = 0) -> int:
    value = d.get(name, default)
    if value is None:
        raise Mq9Error(f"missing field {name}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise Mq9Error(f"field {name} must be an integer, not {type(value).__name__}")
    if not minimum <= value <= MAX_INT:
        raise Mq9Error(f"field {name} must be at least {minimum}")
    return value


def string(d: dict[str, Any], name: str, default: str | None = None) -> str | None:
    value = d.get(name, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Mq9Error(f"field {name} must be a string, not {type(value).__name__}")
    return value


def boolean(d: dict[str, Any], name: str, default: bool = False) -> bool:
    value = d.get(name, default)
    if not isinstance(value, bool):
        raise Mq9Error(f"field {name} must be true or false, not {type(value).__name__}")
    return value


def obj(d: dict[str, Any], name: str) -> dict[str, Any]:
    value = d.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Mq9Error(f"field {name} must be an object, not {type(value).__name__}")
    return value


def header_int(headers: dict[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise Mq9Error(f"header {name} must be an integer number of seconds, not {value[:40]!r}") from None
    if n < 0:
        raise Mq9Error(f"header {name} must not be negative")
    return n


def priority_label(priority: mailslot.Priority) -> str:
    label = str(priority)
    return label if label in MQ9_PRIORITIES else "normal"


def message(m: mailslot.Message) -> dict[str, Any]:
    """mq9's message object: msg_id = the mail stream sequence, payload in base64."""
    sent = m.sent_at
    return {
        "msg_id": m.seq,
        "payload": base64.b64encode(m.data).decode(),
        "priority": priority_label(m.priority),
        "create_time": int(sent.timestamp()) if sent else 0,
    }


def split(subject: str) -> tuple[str, str]:
    """(command, rest) of a ``$mq9.AI.<command>[.<address>]`` subject."""
    rest = subject[len(PREFIX) + 1 :] if subject.startswith(PREFIX + ".") else ""
    for command in (CREATE, REGISTER, UNREGISTER, REPORT, DISCOVER):
        if rest == command:
            return command, ""
    for command in WITH_ADDRESS:
        if rest.startswith(command + "."):
            return command, rest[len(command) + 1 :]
    return rest, ""
